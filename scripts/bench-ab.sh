#!/usr/bin/env bash
# Two builds of tally side by side: each serves a durable database of its own, and a standard
# client drives them in turn, so a change to the hot path is measured against the build before it
# in one run on the same noisy machine. Prints each run and the medians; compare the ratio, and
# run an A/A first to see the noise.
#
#   PROTOCOL=http (default): wrk, POST /counters/{name}/increment (as scripts/bench-service.sh)
#   PROTOCOL=resp:           redis-benchmark -t incr against `serve --resp` (PIPELINE=16 for -P 16)
#
#   cp target/release/tally /tmp/tally-before   # ... change, cargo build --release ...
#   scripts/bench-ab.sh /tmp/tally-before target/release/tally      (ROUNDS=5 SECONDS_PER_RUN=8)
#   PROTOCOL=resp scripts/bench-ab.sh /tmp/tally-before target/release/tally   (REQUESTS=100000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
a=${1:?usage: bench-ab.sh TALLY_A TALLY_B} b=${2:?usage: bench-ab.sh TALLY_A TALLY_B}
rounds=${ROUNDS:-5} seconds=${SECONDS_PER_RUN:-8} clients=${CLIENTS:-32}
protocol=${PROTOCOL:-http} requests=${REQUESTS:-100000} pipeline=${PIPELINE:-1}
case $protocol in
  http) tool=wrk ;;
  resp) tool=redis-benchmark ;;
  *) echo "bench-ab: PROTOCOL is http or resp, not $protocol" >&2; exit 2 ;;
esac
command -v $tool >/dev/null || { echo "bench-ab: $tool is missing; run ./setup --bench" >&2; exit 1; }
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

# serve NAME BINARY: sets PORT to the server's port (HTTP's, or with PROTOCOL=resp the RESP one)
# once it listens. Called in this shell, not a command substitution, so that the server's pid
# reaches `pids` and the exit trap stops it.
serve() {
  local args=(serve --listen 127.0.0.1:0) line=1 prefix="listening on http://"
  if [[ $protocol == resp ]]; then
    args+=(--resp 127.0.0.1:0)
    line=2 prefix="listening on redis://"
  fi
  "$2" --db "$work/$1.db" --cache-dir "$work/cache-$1" "${args[@]}" \
    >"$work/$1.out" 2>"$work/$1.log" &
  pids+=($!)
  for _ in $(seq 100); do
    if said=$(sed -n "${line}p" "$work/$1.out" 2>/dev/null) && [[ $said == "$prefix"* ]]; then
      PORT=${said##*:}
      return
    fi
    sleep 0.1
  done
  echo "bench-ab: $2 did not start; see $work/$1.log" >&2
  exit 1
}
# run PORT SECONDS: prints "requests duration_us failed p99_us".
run() {
  if [[ $protocol == http ]]; then
    wrk -t2 -c"$clients" -d"${2}s" -s "$root/scripts/wrk-increment.lua" "http://127.0.0.1:$1" |
      sed -n 's/^WRK_RESULT requests=\([0-9]*\) duration_us=\([0-9]*\).*status=\([0-9]*\) p99_us=\([0-9]*\)/\1 \2 \3 \4/p'
  else
    # redis-benchmark runs a number of requests, not a time: a warm-up (SECONDS 2) sends a tenth.
    local sent=$requests
    [[ $2 == 2 ]] && sent=$((requests / 10))
    redis-benchmark -h 127.0.0.1 -p "$1" -t incr -c "$clients" -n "$sent" -P "$pipeline" --csv 2>/dev/null |
      python3 -c '
import csv, sys
sent = int(sys.argv[1])
row = next(r for r in csv.reader(sys.stdin) if r and r[0] == "INCR")
rate = float(row[1])
print(f"{sent} {int(sent / rate * 1e6)} 0 {int(float(row[6]) * 1000)}")' "$sent"
  fi
}
serve a "$a"; port_a=$PORT
serve b "$b"; port_b=$PORT
run "$port_a" 2 >/dev/null
run "$port_b" 2 >/dev/null
for round in $(seq "$rounds"); do
  for side in a b; do
    port_var=port_$side
    read -r requests micros failed p99 < <(run "${!port_var}" "$seconds")
    echo "$round $side $((requests * 1000000 / micros)) $failed $p99" | tee -a "$work/runs"
  done
done
python3 - "$work/runs" "$a" "$b" "$protocol" "$pipeline" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
rate = {side: statistics.median(int(r[2]) for r in rows if r[1] == side) for side in "ab"}
p99 = {side: statistics.median(int(r[4]) for r in rows if r[1] == side) / 1000 for side in "ab"}
failed = {side: sum(int(r[3]) for r in rows if r[1] == side) for side in "ab"}
what = "HTTP increments" if sys.argv[4] == "http" else f"RESP INCR (-P {sys.argv[5]})"
for side, binary in zip("ab", sys.argv[2:4]):
    print(f"{side.upper()} {binary}: {rate[side]:.0f} {what}/s median, p99 {p99[side]:.2f} ms, {failed[side]} failed")
print(f"B/A: {rate['b'] / rate['a']:.2f}x")
PY
