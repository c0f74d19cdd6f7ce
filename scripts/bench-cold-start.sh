#!/usr/bin/env bash
# Cold start of the CLI: the median wall time of `tally get` as a fresh process, against the
# `sqlite3` CLI reading the same value from the same file, measured side by side in one hyperfine
# run (the machine is shared and noisy, so only the ratio is meaningful). A third entry shows what
# the compiled-component cache saves: the same `get` with `--no-cache`.
#
#   ./setup --bench && scripts/bench-cold-start.sh        (RUNS=N to change the run count)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${RUNS:-300}

cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db=$work/counters.db
tally="$root/target/release/tally --db $db --cache-dir $work/cache"
$tally set visits 42 >/dev/null # creates the database and the compiled-component cache
[[ $($tally get visits) == 42 ]]
[[ $(sqlite3 "$db" "SELECT value FROM kv WHERE bucket = '' AND key = 'visits'") == 42 ]]

hyperfine --shell=none --warmup 20 --runs "$runs" --export-json "$work/times.json" --style basic \
  -n "sqlite3 CLI" "sqlite3 $db \"SELECT value FROM kv WHERE bucket = '' AND key = 'visits'\"" \
  -n "tally get" "$tally get visits" \
  -n "tally get --no-cache" "$tally --no-cache get visits" >&2

python3 - "$work/times.json" <<'PY'
import json, statistics, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
base = statistics.median(results["sqlite3 CLI"]["times"])
print(f"{'command':<22} {'median':>10} {'vs sqlite3':>11}")
for name, r in results.items():
    m = statistics.median(r["times"])
    print(f"{name:<22} {m * 1000:>8.2f}ms {m / base:>10.1f}x")
PY
