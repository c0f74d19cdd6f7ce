#!/usr/bin/env bash
# Windows' speed, side by side in one run: durable hits through `tally serve` (wrk, POST
# /windows/bench/hit) against durable increments through the same server (POST
# /counters/bench/increment), and against what a Redis rate limiter runs: redis-server with
# `appendonly yes` and `appendfsync always`, driven by redis-benchmark sending EVALSHA of the
# fixed-window script the `limits` library (slowapi, Flask-Limiter) uses, INCRBY and, on a
# window's first hit, EXPIRE. 32 connections each, interleaved rounds (3; the two tally runs in
# alternating order); the table shows the medians and the ratios. Every figure is measured: rates, errors and p99 from the clients, and
# "counted" read back from each server afterwards (the growth of the counter, the windows'
# counts, the Redis key), which must not fall short of what the clients were answered.
#
#   ./setup --bench && scripts/bench-windows.sh     (CLIENTS=32 SECONDS_PER_RUN=10 ROUNDS=3
#                                                   REQUESTS=200000 for redis-benchmark)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
clients=${CLIENTS:-32}
seconds=${SECONDS_PER_RUN:-10}
rounds=${ROUNDS:-3}
requests=${REQUESTS:-200000}
for tool in wrk redis-benchmark redis-server redis-cli curl python3; do
  command -v $tool >/dev/null || { echo "bench: $tool is missing; run ./setup --bench" >&2; exit 1; }
done

# shellcheck source=lib/servers.sh
source "$root/scripts/lib/servers.sh"

# The fixed-window limiter as a Redis script: add ARGV[2] to the window's key and, when that
# made the key (its first hit), let it expire after ARGV[1] seconds; the new count.
limiter='local count = redis.call("INCRBY", KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call("EXPIRE", KEYS[1], ARGV[1]) end
return count'

start_tally tally full;          tally_port=$PORT
start_redis always always;       redis_port=$PORT
sha=$(redis-cli -p "$redis_port" SCRIPT LOAD "$limiter")

counter() { curl -s "localhost:$tally_port/counters/bench" | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])'; }
# The hits of `bench` in its last 60 windows (hits keep 60): every hit of the whole run.
window_hits() { curl -s "localhost:$tally_port/windows/bench?window=1m&last=60" | python3 -c 'import json,sys; print(sum(json.load(sys.stdin)["counts"]))'; }
redis_key() { local v; v=$(redis-cli -p "$redis_port" GET limiter:bench); echo "${v:-0}"; }

# wrk_run HIT: prints "rate p99_ms errors answered".
wrk_run() {
  HIT=$1 wrk -t2 -c "$clients" -d "${seconds}s" --timeout 10s -s "$root/scripts/wrk-increment.lua" \
    "http://127.0.0.1:$tally_port" | python3 -c '
import re, sys
fields = dict(re.findall(r"(\w+)=(\d+)", next(l for l in sys.stdin if l.startswith("WRK_RESULT"))))
requests, seconds = int(fields["requests"]), int(fields["duration_us"]) / 1e6
errors = sum(int(fields[k]) for k in ("connect", "read", "write", "timeout", "status"))
p99 = int(fields["p99_us"]) / 1000
print(f"{requests / seconds:.0f} {p99:.2f} {errors} {requests - errors}")'
}

# redis_run: prints "rate p99_ms errors answered" (redis-benchmark reports no errors: 0).
redis_run() {
  redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$clients" -n "$requests" --csv \
    EVALSHA "$sha" 1 limiter:bench 3600 1 2>/dev/null | python3 -c '
import csv, sys
rows = [r for r in csv.reader(sys.stdin) if r and r[0] != "test"]
row = rows[-1]
print(f"{float(row[1]):.0f} {float(row[6]):.2f} 0 '"$requests"'")'
}

# Warm-up: the compile cache, SQLite's pages, Redis's script cache.
HIT=1 wrk -t2 -c "$clients" -d 2s -s "$root/scripts/wrk-increment.lua" "http://127.0.0.1:$tally_port" >/dev/null
HIT=0 wrk -t2 -c "$clients" -d 2s -s "$root/scripts/wrk-increment.lua" "http://127.0.0.1:$tally_port" >/dev/null
redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$clients" -n 20000 -q EVALSHA "$sha" 1 limiter:bench 3600 1 >/dev/null 2>&1

results=$work/results.txt
# Each round runs the three in turn, the two tally runs in alternating order (a run that follows
# another on the same database meets its checkpoints).
tally_increments() {
  local before; before=$(counter)
  read -r rate p99 errors answered < <(wrk_run 0)
  echo "$1 increments $rate $p99 $errors $answered $(($(counter) - before))" >>"$results"
}
tally_hits() {
  local before; before=$(window_hits)
  read -r rate p99 errors answered < <(wrk_run 1)
  echo "$1 hits $rate $p99 $errors $answered $(($(window_hits) - before))" >>"$results"
}
for round in $(seq "$rounds"); do
  if ((round % 2)); then tally_increments "$round"; tally_hits "$round"
  else tally_hits "$round"; tally_increments "$round"; fi
  before=$(redis_key)
  read -r rate p99 errors answered < <(redis_run)
  echo "$round redis $rate $p99 $errors $answered $(($(redis_key) - before))" >>"$results"
  echo "bench: round $round done" >&2
done

python3 - "$results" "$clients" "$rounds" "$seconds" "$requests" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
clients, rounds, seconds, requests = sys.argv[2:6]
by = {}
for _, what, rate, p99, errors, answered, counted in rows:
    entry = by.setdefault(what, {"rate": [], "p99": [], "errors": [], "short": []})
    entry["rate"].append(float(rate)); entry["p99"].append(float(p99))
    entry["errors"].append(int(errors))
    # Counted below answered means an acknowledged write was lost.
    entry["short"].append(int(counted) < int(answered))
med = lambda what, field: statistics.median(by[what][field])
names = {
    "increments": "tally serve --durability full: POST /counters/bench/increment (wrk)",
    "hits": "tally serve --durability full: POST /windows/bench/hit (wrk)",
    "redis": "redis-server appendfsync always: EVALSHA INCRBY+EXPIRE (redis-benchmark)",
}
print(f"{clients} connections; wrk {seconds} s per run, redis-benchmark {requests} requests; "
      f"medians of {rounds} interleaved rounds\n")
print("| what | per second | p99 ms | errors | every answered write counted |")
print("| --- | ---: | ---: | ---: | --- |")
for what in ("increments", "hits", "redis"):
    print(f"| {names[what]} | {med(what, 'rate'):,.0f} | {med(what, 'p99'):.2f} | "
          f"{sum(by[what]['errors'])} | {'NO' if any(by[what]['short']) else 'yes'} |")
print(f"\nhits / increments: {med('hits', 'rate') / med('increments', 'rate'):.2f}x (target 0.9x); "
      f"hits / Redis limiter: {med('hits', 'rate') / med('redis', 'rate'):.2f}x (target 0.6x)")
PY
