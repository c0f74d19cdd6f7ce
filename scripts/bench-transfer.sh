#!/usr/bin/env bash
# Backups and moves of N counters (default 100,000): `tally backup`, `tally export` and
# `tally import` against the sqlite3 CLI doing the same job on the same file, side by side in one
# hyperfine run (the machine is shared and noisy, so only the ratios are meaningful):
#
#   backup   sqlite3 .backup                  vs  tally backup
#   export   sqlite3 -json SELECT (all rows)  vs  tally export (JSON lines, through the component)
#   import   sqlite3 < one INSERT transaction  vs  tally import (checks the file, one transaction)
#
#   ./setup --bench && scripts/bench-transfer.sh          (COUNTERS=N, RUNS=N to change them)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
counters=${COUNTERS:-100000}
runs=${RUNS:-10}

cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=$work/source.db
tally="$root/target/release/tally --cache-dir $work/cache"

python3 - "$counters" "$work" <<'PY'
import json, sys
n, work = int(sys.argv[1]), sys.argv[2]
with open(f"{work}/counters.jsonl", "w") as lines, open(f"{work}/inserts.sql", "w") as sql:
    sql.write("BEGIN;\nCREATE TABLE kv (bucket TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (bucket, key));\n")
    for i in range(n):
        name, value = f"user:{i:07d}/visits", i * 7
        lines.write(json.dumps({"name": name, "value": value}, separators=(",", ":")) + "\n")
        sql.write(f"INSERT INTO kv VALUES ('', '{name}', CAST('{value}' AS BLOB));\n")
    sql.write("COMMIT;\n")
PY
$tally --db "$src" import "$work/counters.jsonl" >&2
[[ $($tally --db "$src" get user:0000003/visits) == 21 ]]

hyperfine --warmup 1 --runs "$runs" --export-json "$work/times.json" --style basic \
  --prepare "rm -f $work/out.db $work/out.db-wal $work/out.db-shm" \
  -n "backup: sqlite3 .backup" "sqlite3 $src '.backup $work/out.db'" \
  -n "backup: tally backup" "$tally --db $src backup $work/out.db" \
  -n "export: sqlite3 -json" "sqlite3 -json $src \"SELECT key AS name, CAST(value AS INTEGER) AS value FROM kv ORDER BY key\" > $work/out.json" \
  -n "export: tally export" "$tally --db $src export > $work/out.jsonl" \
  -n "import: sqlite3 INSERTs" "sqlite3 $work/out.db < $work/inserts.sql" \
  -n "import: tally import" "$tally --db $work/out.db import $work/counters.jsonl" >&2

python3 - "$work/times.json" "$counters" <<'PY'
import json, statistics, sys
results = [(r["command"], statistics.median(r["times"])) for r in json.load(open(sys.argv[1]))["results"]]
print(f"{int(sys.argv[2]):,} counters, medians")
print(f"| {'command':<24} | {'median':>10} | {'vs sqlite3':>10} |")
print(f"| {'---':<24} | {'---:':>10} | {'---:':>10} |")
base = None
for name, median in results:
    base = median if name.split(":")[1].strip().startswith("sqlite3") else base
    print(f"| {name:<24} | {median * 1000:>8.1f}ms | {median / base:>9.1f}x |")
PY
