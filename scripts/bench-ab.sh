#!/usr/bin/env bash
# Two builds of tally side by side: each serves a durable database of its own, and wrk drives them
# in turn (the same load as scripts/bench-service.sh), so a change to the hot path is measured
# against the build before it in one run on the same noisy machine. Prints each run and the
# medians; compare the ratio, and run an A/A first to see the noise.
#
#   cp target/release/tally /tmp/tally-before   # ... change, cargo build --release ...
#   scripts/bench-ab.sh /tmp/tally-before target/release/tally      (ROUNDS=5 SECONDS_PER_RUN=8)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
a=${1:?usage: bench-ab.sh TALLY_A TALLY_B} b=${2:?usage: bench-ab.sh TALLY_A TALLY_B}
rounds=${ROUNDS:-5} seconds=${SECONDS_PER_RUN:-8} clients=${CLIENTS:-32}
command -v wrk >/dev/null || { echo "bench-ab: wrk is missing; run ./setup --bench" >&2; exit 1; }
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

# serve NAME BINARY: prints the port once the server listens.
serve() {
  "$2" --db "$work/$1.db" --cache-dir "$work/cache-$1" serve --listen 127.0.0.1:0 \
    >"$work/$1.out" 2>"$work/$1.log" &
  pids+=($!)
  for _ in $(seq 100); do
    if line=$(head -1 "$work/$1.out" 2>/dev/null) && [[ $line == "listening on http://"* ]]; then
      echo "${line##*:}"
      return
    fi
    sleep 0.1
  done
  echo "bench-ab: $2 did not start; see $work/$1.log" >&2
  exit 1
}
run() {
  wrk -t2 -c"$clients" -d"${2}s" -s "$root/scripts/wrk-increment.lua" "http://127.0.0.1:$1" |
    sed -n 's/^WRK_RESULT requests=\([0-9]*\) duration_us=\([0-9]*\).*status=\([0-9]*\) p99_us=\([0-9]*\)/\1 \2 \3 \4/p'
}
port_a=$(serve a "$a")
port_b=$(serve b "$b")
run "$port_a" 2 >/dev/null
run "$port_b" 2 >/dev/null
for round in $(seq "$rounds"); do
  for side in a b; do
    port_var=port_$side
    read -r requests micros failed p99 < <(run "${!port_var}" "$seconds")
    echo "$round $side $((requests * 1000000 / micros)) $failed $p99" | tee -a "$work/runs"
  done
done
python3 - "$work/runs" "$a" "$b" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
rate = {side: statistics.median(int(r[2]) for r in rows if r[1] == side) for side in "ab"}
p99 = {side: statistics.median(int(r[4]) for r in rows if r[1] == side) / 1000 for side in "ab"}
failed = {side: sum(int(r[3]) for r in rows if r[1] == side) for side in "ab"}
for side, binary in zip("ab", sys.argv[2:]):
    print(f"{side.upper()} {binary}: {rate[side]:.0f}/s median, p99 {p99[side]:.2f} ms, {failed[side]} non-2xx")
print(f"B/A: {rate['b'] / rate['a']:.2f}x")
PY
