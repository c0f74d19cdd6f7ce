#!/usr/bin/env bash
# Listing at scale, each against `tally export` of the same file in the same hyperfine run (the
# machine is shared and noisy, so only the ratios are meaningful):
#   - 200,000 counters over HTTP: every page of `GET /counters`, following the `Link` header on one
#     keep-alive connection (Python's http.client), against `tally export`;
#   - 1,000,000 counters: `tally list` (a page of 1,000 per component call) against `tally export`.
# Medians of RUNS runs (default 3). Every figure is measured; the counts printed are checked.
# BASELINE=PATH also runs another build's server and `tally list` in the same hyperfine runs (on
# copies of the same files), for an A/B of a listing change.
#
#   ./setup --bench && scripts/bench-list.sh          (HTTP_COUNTERS=N CLI_COUNTERS=N RUNS=N)
#   cp target/release/tally /tmp/tally-before   # ... change ...
#   BASELINE=/tmp/tally-before scripts/bench-list.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
http_counters=${HTTP_COUNTERS:-200000}
cli_counters=${CLI_COUNTERS:-1000000}
runs=${RUNS:-3}
baseline=${BASELINE:-}
[[ -z $baseline || -x $baseline ]] || { echo "bench: BASELINE $baseline is not a program" >&2; exit 1; }
for tool in hyperfine curl python3; do
  command -v $tool >/dev/null || { echo "bench: $tool is missing; run ./setup --bench" >&2; exit 1; }
done

cargo build --release --quiet
tally="$root/target/release/tally"
work=$(mktemp -d)
servers=()
cleanup() {
  kill "${servers[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# make_db FILE COUNT [BINARY]: a database of COUNT counters c0000000, c0000001, ... (value =
# number), written by BINARY (default this build: a build reads the schema it writes, and an
# older one refuses a newer schema).
make_db() {
  python3 -c '
import sys
for n in range(int(sys.argv[1])):
    print(f"{{\"name\":\"c{n:07}\",\"value\":{n}}}")' "$2" >"$work/counters.jsonl"
  local cache=$work/cache
  [[ -n ${3:-} ]] && cache=$work/cache-baseline
  "${3:-$tally}" --db "$1" --cache-dir "$cache" import "$work/counters.jsonl" >/dev/null
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

# serve BINARY DB: starts a server on DB, checks that it lists every counter, sets url to its URL
# (not printed: a command substitution's subshell would lose the server's pid).
serve() {
  "$1" --db "$2" --cache-dir "$work/cache" serve --listen 127.0.0.1:0 \
    >"$2.out" 2>"$2.log" &
  servers+=($!)
  local line=
  for _ in $(seq 100); do
    line=$(head -1 "$2.out" 2>/dev/null || true)
    [[ $line == "listening on http://"* ]] && break
    sleep 0.1
  done
  url=${line#listening on }
  local listed
  listed=$(python3 "$work/follow.py" "$url")
  [[ $listed == "$http_counters" ]] || { echo "bench: $1 listed $listed of $http_counters" >&2; exit 1; }
}

make_db "$work/http.db" "$http_counters"
commands=(-n "tally export ($http_counters)" "$tally --db $work/http.db --cache-dir $work/cache export >/dev/null")
if [[ -n $baseline ]]; then
  make_db "$work/http-baseline.db" "$http_counters" "$baseline"
  serve "$baseline" "$work/http-baseline.db"
  commands+=(-n "GET /counters, every page ($http_counters), BASELINE" "python3 $work/follow.py $url")
fi
serve "$tally" "$work/http.db"
commands+=(-n "GET /counters, every page ($http_counters)" "python3 $work/follow.py $url")
hyperfine --warmup 1 --runs "$runs" --export-json "$work/http.json" --style basic "${commands[@]}" >&2
kill "${servers[@]}"
wait 2>/dev/null || true
servers=()

make_db "$work/cli.db" "$cli_counters"
[[ $("$tally" --db "$work/cli.db" --cache-dir "$work/cache" list | wc -l) == "$cli_counters" ]]
commands=(-n "tally export ($cli_counters)" "$tally --db $work/cli.db --cache-dir $work/cache export >/dev/null")
if [[ -n $baseline ]]; then
  make_db "$work/cli-baseline.db" "$cli_counters" "$baseline"
  [[ $("$baseline" --db "$work/cli-baseline.db" --cache-dir "$work/cache-baseline" list | wc -l) == "$cli_counters" ]]
  commands+=(-n "tally list ($cli_counters), BASELINE" "$baseline --db $work/cli-baseline.db --cache-dir $work/cache-baseline list >/dev/null")
fi
commands+=(-n "tally list ($cli_counters)" "$tally --db $work/cli.db --cache-dir $work/cache list >/dev/null")
hyperfine --warmup 1 --runs "$runs" --export-json "$work/cli.json" --style basic "${commands[@]}" >&2

python3 - "$work/http.json" "$work/cli.json" <<'PY'
import json, statistics, sys
print("| command | median | vs `tally export` |")
print("| --- | ---: | ---: |")
against = []
for path in sys.argv[1:]:
    results = json.load(open(path))["results"]
    base = statistics.median(results[0]["times"])
    for r in results:
        m = statistics.median(r["times"])
        print(f"| {r['command']} | {m:.2f} s | {m / base:.1f}x |")
    if len(results) == 3:  # export, the BASELINE build, this build
        before, after = (statistics.median(r["times"]) for r in results[1:])
        against.append(f"{results[2]['command']}: {before / after:.2f}x as fast as BASELINE")
for line in against:
    print(line)
PY
