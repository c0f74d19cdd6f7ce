#!/usr/bin/env bash
# tally serve --resp against redis-server with the same client, redis-benchmark (`-t incr`), in one
# run. Each pair compares like with like:
#   tally --durability full     vs  redis-server --appendonly yes --appendfsync always
#   tally --durability relaxed  vs  redis-server --appendonly yes --appendfsync everysec
# each without pipelining and with -P 16. Three rounds, interleaved (every configuration once per
# round, so a noisy moment of the shared machine hits all of them); the table shows the medians
# and the ratio of each tally median to its Redis pair's. Every figure is measured: rates and p99
# from redis-benchmark's CSV, and "counted" read back from each server afterwards (the counter's
# growth), which must equal the requests sent: an increment lost or refused shows there.
#
#   ./setup --bench && scripts/bench-resp.sh      (CLIENTS=32 REQUESTS=200000 ROUNDS=3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
clients=${CLIENTS:-32}
requests=${REQUESTS:-200000}
rounds=${ROUNDS:-3}
for tool in redis-benchmark redis-server redis-cli python3; do
  command -v $tool >/dev/null || { echo "bench: $tool is missing; run ./setup --bench" >&2; exit 1; }
done

# shellcheck source=lib/servers.sh
source "$root/scripts/lib/servers.sh"

value() { local v; v=$(redis-cli -p "$1" GET counter:__rand_int__); echo "${v:-0}"; }

# run PORT PIPELINE: prints "rate p99_ms".
run() {
  redis-benchmark -h 127.0.0.1 -p "$1" -t incr -c "$clients" -n "$requests" -P "$2" --csv 2>/dev/null |
    python3 -c '
import csv, sys
row = next(r for r in csv.reader(sys.stdin) if r and r[0] == "INCR")
print(f"{float(row[1]):.0f} {float(row[6]):.2f}")'
}

start_tally full full resp;          tally_full=$PORT
start_tally relaxed relaxed resp;    tally_relaxed=$PORT
start_redis always always;      redis_always=$PORT
start_redis everysec everysec;  redis_everysec=$PORT
# Warm-up: compiled caches, SQLite pages, connections.
for port in $tally_full $tally_relaxed $redis_always $redis_everysec; do
  redis-benchmark -h 127.0.0.1 -p "$port" -t incr -c "$clients" -n 20000 -q >/dev/null 2>&1
done

results=$work/results.txt
for round in $(seq "$rounds"); do
  for pipeline in 1 16; do
    for config in "tally full $tally_full" "redis always $redis_always" \
      "tally relaxed $tally_relaxed" "redis everysec $redis_everysec"; do
      read -r server mode port <<<"$config"
      before=$(value "$port")
      read -r rate p99 < <(run "$port" "$pipeline")
      counted=$(($(value "$port") - before))
      echo "$round $pipeline $server $mode $rate $p99 $counted" >>"$results"
      echo "bench: round $round, -P $pipeline: $server $mode: $rate/s, p99 $p99 ms, counted $counted of $requests" >&2
    done
  done
done

python3 - "$results" "$clients" "$rounds" "$requests" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
clients, rounds, requests = sys.argv[2], sys.argv[3], int(sys.argv[4])
by = {}
for _, pipeline, server, mode, rate, p99, counted in rows:
    entry = by.setdefault((pipeline, server, mode), {"rate": [], "p99": [], "counted": []})
    entry["rate"].append(float(rate)); entry["p99"].append(float(p99)); entry["counted"].append(int(counted))
med = lambda key, field: statistics.median(by[key][field])
print(f"redis-benchmark -t incr -c {clients} -n {requests}, medians of {rounds} interleaved rounds\n")
print("| pipeline | tally | INCR/s | p99 ms | Redis | INCR/s | p99 ms | ratio | every increment counted |")
print("| ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | --- |")
for pipeline in ("1", "16"):
    for tally, redis in (("full", "always"), ("relaxed", "everysec")):
        t, r = (pipeline, "tally", tally), (pipeline, "redis", redis)
        exact = all(c == requests for c in by[t]["counted"] + by[r]["counted"])
        print(f"| {pipeline} | {tally} | {med(t, 'rate'):,.0f} | {med(t, 'p99'):.2f} | appendfsync {redis} | "
              f"{med(r, 'rate'):,.0f} | {med(r, 'p99'):.2f} | {med(t, 'rate') / med(r, 'rate'):.2f}x | "
              f"{'yes' if exact else 'NO'} |")
PY
