#!/usr/bin/env bash
# Listing at scale, each against `tally export` of the same file in the same hyperfine run (the
# machine is shared and noisy, so only the ratios are meaningful):
#   - 200,000 counters over HTTP: every page of `GET /counters`, following the `Link` header on one
#     keep-alive connection (Python's http.client), against `tally export`;
#   - 1,000,000 counters: `tally list` (a page of 1,000 per component call) against `tally export`.
# Medians of RUNS runs (default 3). Every figure is measured; the counts printed are checked.
#
#   ./setup --bench && scripts/bench-list.sh          (HTTP_COUNTERS=N CLI_COUNTERS=N RUNS=N)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
http_counters=${HTTP_COUNTERS:-200000}
cli_counters=${CLI_COUNTERS:-1000000}
runs=${RUNS:-3}
for tool in hyperfine curl python3; do
  command -v $tool >/dev/null || { echo "bench: $tool is missing; run ./setup --bench" >&2; exit 1; }
done

cargo build --release --quiet
tally="$root/target/release/tally"
work=$(mktemp -d)
server=
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# make_db FILE COUNT: a database of COUNT counters c0000000, c0000001, ... (value = number).
make_db() {
  python3 -c '
import sys
for n in range(int(sys.argv[1])):
    print(f"{{\"name\":\"c{n:07}\",\"value\":{n}}}")' "$2" >"$work/counters.jsonl"
  "$tally" --db "$1" --cache-dir "$work/cache" import "$work/counters.jsonl" >/dev/null
}

# The page follower: one keep-alive connection (Python's standard http.client), every page by
# the Link header; prints how many counters it read. (One curl process per page measures curl's
# start-up instead: 2.7 s for the same 200 pages.)
cat >"$work/follow.py" <<'PY'
import http.client, re, sys
host, port = sys.argv[1].removeprefix("http://").rsplit(":", 1)
connection = http.client.HTTPConnection(host, int(port))
url, total = "/counters", 0
while url:
    connection.request("GET", url)
    response = connection.getresponse()
    if response.status != 200:
        sys.exit(f"GET {url}: HTTP {response.status}")
    total += response.read().count(b'"name"')
    link = re.match(r'<([^>]*)>;\s*rel="next"', response.getheader("Link") or "")
    url = link.group(1) if link else None
print(total)
PY

make_db "$work/http.db" "$http_counters"
"$tally" --db "$work/http.db" --cache-dir "$work/cache" serve --listen 127.0.0.1:0 \
  >"$work/serve.out" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do
  line=$(head -1 "$work/serve.out" 2>/dev/null || true)
  [[ $line == "listening on http://"* ]] && break
  sleep 0.1
done
base=${line#listening on }
listed=$(python3 "$work/follow.py" "$base")
[[ $listed == "$http_counters" ]] || { echo "bench: listed $listed of $http_counters" >&2; exit 1; }

hyperfine --warmup 1 --runs "$runs" --export-json "$work/http.json" --style basic \
  -n "tally export ($http_counters)" "$tally --db $work/http.db --cache-dir $work/cache export >/dev/null" \
  -n "GET /counters, every page ($http_counters)" "python3 $work/follow.py $base" >&2
kill "$server"
wait "$server" 2>/dev/null || true
server=

make_db "$work/cli.db" "$cli_counters"
[[ $("$tally" --db "$work/cli.db" --cache-dir "$work/cache" list | wc -l) == "$cli_counters" ]]
hyperfine --warmup 1 --runs "$runs" --export-json "$work/cli.json" --style basic \
  -n "tally export ($cli_counters)" "$tally --db $work/cli.db --cache-dir $work/cache export >/dev/null" \
  -n "tally list ($cli_counters)" "$tally --db $work/cli.db --cache-dir $work/cache list >/dev/null" >&2

python3 - "$work/http.json" "$work/cli.json" <<'PY'
import json, statistics, sys
print("| command | median | vs `tally export` |")
print("| --- | ---: | ---: |")
for path in sys.argv[1:]:
    results = json.load(open(path))["results"]
    base = statistics.median(results[0]["times"])
    for r in results:
        m = statistics.median(r["times"])
        print(f"| {r['command']} | {m:.2f} s | {m / base:.1f}x |")
PY
