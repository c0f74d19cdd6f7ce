#!/usr/bin/env bash
# Two builds of tally side by side, measured by the CPU time each server spends per RESP INCR
# (utime + stime of the server process from /proc, over REQUESTS requests from redis-benchmark):
# on a shared, noisy machine this moves far less than throughput does, which the other processes'
# load shifts from one run to the next. Interleaved rounds; prints each and the medians.
#
#   scripts/bench-cpu-ab.sh /tmp/tally-before target/release/tally    (ROUNDS=4 REQUESTS=100000 PIPELINE=1)
set -euo pipefail
a=${1:?usage: bench-cpu-ab.sh TALLY_A TALLY_B} b=${2:?usage: bench-cpu-ab.sh TALLY_A TALLY_B}
rounds=${ROUNDS:-4} requests=${REQUESTS:-100000} pipeline=${PIPELINE:-1} clients=${CLIENTS:-32}
command -v redis-benchmark >/dev/null || { echo "bench-cpu-ab: redis-benchmark is missing; run ./setup --bench" >&2; exit 1; }
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
# serve NAME BINARY: starts the server and records its pid and RESP port.
serve() {
  "$2" --db "$work/$1.db" --cache-dir "$work/cache-$1" serve --listen 127.0.0.1:0 --resp 127.0.0.1:0 \
    >"$work/$1.out" 2>"$work/$1.log" &
  pids+=($!)
  echo $! >"$work/$1.pid"
  for _ in $(seq 100); do
    if said=$(sed -n 2p "$work/$1.out") && [[ $said == "listening on redis://"* ]]; then
      echo "${said##*:}" >"$work/$1.port"
      return
    fi
    sleep 0.1
  done
  echo "bench-cpu-ab: $2 did not start; see $work/$1.log" >&2
  exit 1
}
# ticks PID: the process's CPU time so far, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
load() {
  redis-benchmark -p "$1" -t incr -c "$clients" -n "$2" -P "$pipeline" -q 2>/dev/null >/dev/null
}
serve a "$a"
serve b "$b"
hz=$(getconf CLK_TCK)
for side in a b; do load "$(cat "$work/$side.port")" $((requests / 10)); done
for round in $(seq "$rounds"); do
  for side in a b; do
    pid=$(cat "$work/$side.pid")
    before=$(ticks "$pid")
    load "$(cat "$work/$side.port")" "$requests"
    after=$(ticks "$pid")
    echo "$round $side $(((after - before) * 1000000000 / hz / requests))" | tee -a "$work/runs"
  done
done
python3 - "$work/runs" "$a" "$b" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
cpu = {side: statistics.median(int(r[2]) for r in rows if r[1] == side) for side in "ab"}
for side, binary in zip("ab", sys.argv[2:4]):
    print(f"{side.upper()} {binary}: {cpu[side] / 1000:.1f} us of server CPU per INCR, median")
print(f"B/A: {cpu['b'] / cpu['a']:.2f}x")
PY
