#!/usr/bin/env bash
# Two builds of tally side by side, measured by what each server spends per durable increment:
# CPU time (utime + stime of the server process from /proc) and context switches (`perf stat -e
# context-switches` on the server's threads, or /proc's counts without perf), over REQUESTS
# requests from a standard client. On a shared, noisy machine these move far less than
# throughput does, which the other processes' load shifts from one run to the next. Interleaved
# rounds; prints each and the medians.
#
#   scripts/bench-cpu-ab.sh /tmp/tally-before target/release/tally
#       (ROUNDS=4 REQUESTS=100000 PIPELINE=1 CLIENTS=32; PROTOCOL=resp by redis-benchmark -t incr,
#        or PROTOCOL=http by wrk -s scripts/wrk-increment.lua for SECONDS_PER_RUN=8)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
a=${1:?usage: bench-cpu-ab.sh TALLY_A TALLY_B} b=${2:?usage: bench-cpu-ab.sh TALLY_A TALLY_B}
rounds=${ROUNDS:-4} requests=${REQUESTS:-100000} pipeline=${PIPELINE:-1} clients=${CLIENTS:-32}
protocol=${PROTOCOL:-resp} seconds=${SECONDS_PER_RUN:-8}
case $protocol in
  resp) tool=redis-benchmark line=2 prefix="listening on redis://" ;;
  http) tool=wrk line=1 prefix="listening on http://" ;;
  *) echo "bench-cpu-ab: PROTOCOL is resp or http, not $protocol" >&2; exit 2 ;;
esac
command -v $tool >/dev/null || { echo "bench-cpu-ab: $tool is missing; run ./setup --bench" >&2; exit 1; }
use_perf=false
perf stat -e context-switches true >/dev/null 2>&1 && use_perf=true
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
# serve NAME BINARY: starts the server and records its pid and port.
serve() {
  "$2" --db "$work/$1.db" --cache-dir "$work/cache-$1" serve --listen 127.0.0.1:0 --resp 127.0.0.1:0 \
    >"$work/$1.out" 2>"$work/$1.log" &
  pids+=($!)
  echo $! >"$work/$1.pid"
  for _ in $(seq 100); do
    if said=$(sed -n "${line}p" "$work/$1.out") && [[ $said == "$prefix"* ]]; then
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
# switches PID: the context switches of the process's live threads so far (without perf).
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'; }
# load PORT [REQUESTS]: drives the server; prints how many increments it answered.
load() {
  if [[ $protocol == resp ]]; then
    redis-benchmark -p "$1" -t incr -c "$clients" -n "${2:-$requests}" -P "$pipeline" -q >/dev/null 2>&1
    echo "${2:-$requests}"
  else
    wrk -t2 -c"$clients" -d"${seconds}s" -s "$root/scripts/wrk-increment.lua" "http://127.0.0.1:$1" |
      awk '/requests in/ {print $1}'
  fi
}
# measure PID PORT: "answered switches" over one load.
measure() {
  if $use_perf; then
    perf stat -x, -e context-switches -p "$1" -o "$work/perf" -- bash -c "$(declare -f load); \
      protocol=$protocol clients=$clients requests=$requests pipeline=$pipeline seconds=$seconds \
      root=$root load $2" >"$work/answered"
    echo "$(cat "$work/answered") $(awk -F, '/context-switches/ {print $1}' "$work/perf")"
  else
    local before answered
    before=$(switches "$1")
    answered=$(load "$2")
    echo "$answered $(($(switches "$1") - before))"
  fi
}
serve a "$a"
serve b "$b"
hz=$(getconf CLK_TCK)
for side in a b; do
  if [[ $protocol == resp ]]; then load "$(cat "$work/$side.port")" $((requests / 10)) >/dev/null; fi
done
for round in $(seq "$rounds"); do
  for side in a b; do
    pid=$(cat "$work/$side.pid")
    before=$(ticks "$pid")
    read -r answered switched < <(measure "$pid" "$(cat "$work/$side.port")")
    after=$(ticks "$pid")
    echo "$round $side $(((after - before) * 1000000000 / hz / answered)) $switched $answered" | tee -a "$work/runs"
  done
done
python3 - "$work/runs" "$a" "$b" "$protocol" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
cpu = {s: statistics.median(int(r[2]) for r in rows if r[1] == s) for s in "ab"}
cs = {s: statistics.median(int(r[3]) / int(r[4]) for r in rows if r[1] == s) for s in "ab"}
for side, binary in zip("ab", sys.argv[2:4]):
    print(f"{side.upper()} {binary}: {cpu[side] / 1000:.1f} us of server CPU and "
          f"{cs[side]:.2f} context switches per {sys.argv[4]} increment, medians")
print(f"B/A: CPU {cpu['b'] / cpu['a']:.2f}x, context switches {cs['b'] / cs['a']:.2f}x")
PY
