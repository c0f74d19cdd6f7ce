#!/usr/bin/env bash
# Counts tally-keyvalue's public API: items reachable by a public path, plus the public inherent
# methods and associated constants of those types (trait methods belong to their trait), from
# rustdoc's JSON output. Stable rustdoc makes JSON only with RUSTC_BOOTSTRAP=1: a measurement,
# nothing shipped depends on it. `--list` prints every item.
#
#   scripts/public-items.sh [--list]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
RUSTC_BOOTSTRAP=1 cargo rustdoc --quiet -p tally-keyvalue --all-features -- \
  -Z unstable-options --output-format json
python3 - "${CARGO_TARGET_DIR:-target}/doc/tally_keyvalue.json" "$@" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
index, paths = doc["index"], doc["paths"]
skipped = {"module", "variant", "struct_field", "assoc_type", "assoc_const", "method", "impl"}
top = {i: "::".join(p["path"]) for i, p in paths.items()
       if p["crate_id"] == 0 and p["kind"] not in skipped}
members = []
for item in index.values():
    impl = item.get("inner", {}).get("impl")
    if not impl or impl.get("trait") is not None or impl.get("blanket_impl"):
        continue
    target = impl["for"]
    if "resolved_path" in target:
        owner = str(target["resolved_path"]["id"])
    elif "dyn_trait" in target and target["dyn_trait"]["traits"]:
        owner = str(target["dyn_trait"]["traits"][0]["trait"]["id"])
    else:
        continue
    if owner not in top:
        continue
    for member in impl["items"]:
        found = index.get(str(member))
        if found and found.get("visibility") == "public":
            members.append(f"{top[owner]}::{found.get('name')}")
generated = sum(1 for name in top.values() if name.startswith("tally_keyvalue::bindings::"))
print(f"{len(top) + len(members)} public items: {len(top)} reachable items ({generated} of them "
      f"generated bindings) and {len(members)} inherent methods and constants")
if "--list" in sys.argv[2:]:
    print("\n".join(sorted(top.values()) + sorted(members)))
PY
