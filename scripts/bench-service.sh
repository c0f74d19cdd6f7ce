#!/usr/bin/env bash
# tally serve against redis-server, side by side in one run, driven by standard C clients: wrk
# (scripts/wrk-increment.lua, a POST of an increment per request) for tally over HTTP, and
# redis-benchmark (`-t incr`) for Redis. Each pair compares like with like:
#   tally --durability full     vs  redis-server --appendonly yes --appendfsync always
#   tally --durability relaxed  vs  redis-server --appendonly yes --appendfsync everysec
# Three rounds, interleaved (every configuration once per round, so a noisy moment of the shared
# machine hits all of them), and the table shows the medians. Every figure is measured: rates and
# p99 from the clients, errors from the clients' own error counts, and "counted" read back from
# the server (the counter's final value minus its start), which must equal what was answered.
#
#   ./setup --bench && scripts/bench-service.sh      (CLIENTS=32 SECONDS_PER_RUN=10 ROUNDS=3)
#   ./setup --bench && scripts/bench-service.sh --soak 60        one durable server held 60 s
#   ./setup --bench && scripts/bench-service.sh --memory          RSS after 1,000,000 increments
#   ./setup --bench && scripts/bench-service.sh --keys            the cost of an Idempotency-Key
#
# --keys: one durable server, increments with a new Idempotency-Key each (KEYED=1 for
# wrk-increment.lua) against the same requests without one (KEYED=0), interleaved rounds,
# medians; "counted" must equal "answered" for both.
#
# --memory: increments spread over 10,000 names (NAMES=10000 for wrk-increment.lua) until a durable
# server has answered 1,000,000 (INCREMENTS=N to change), then its resident memory.
#
# --soak S: 32 connections on durable tally serve for S seconds; reports requests served, errors,
# p99 and the server's resident memory at the start and the end; fails if it grew over 10%, or if
# the counter did not count every answered increment.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
clients=${CLIENTS:-32}
seconds=${SECONDS_PER_RUN:-10}
rounds=${ROUNDS:-3}
soak= memory=false keys=false
case ${1:-} in
  --soak) soak=${2:?--soak takes a number of seconds} ;;
  --memory) memory=true ;;
  --keys) keys=true ;;
  "") ;;
  *) echo "bench: unknown option $1 (--soak S, --memory or --keys)" >&2; exit 2 ;;
esac
for tool in wrk redis-benchmark redis-server redis-cli python3 curl; do
  command -v $tool >/dev/null || { echo "bench: $tool is missing; run ./setup --bench" >&2; exit 1; }
done

# shellcheck source=lib/servers.sh
source "$root/scripts/lib/servers.sh"

tally_value() { curl -sf "http://127.0.0.1:$1/counters/bench" | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])'; }
redis_value() { local v; v=$(redis-cli -p "$1" GET counter:__rand_int__); echo "${v:-0}"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# run_wrk PORT SECONDS: prints "rate p99_ms errors answered" (NAMES from the environment spreads
# the increments over that many counters).
run_wrk() {
  local out
  out=$(wrk -t2 -c"$clients" -d"${2}s" --latency -s "$root/scripts/wrk-increment.lua" \
    "http://127.0.0.1:$1" | grep '^WRK_RESULT')
  python3 - "$out" <<'PY'
import sys
fields = dict(item.split("=") for item in sys.argv[1].split()[1:])
n = {k: int(v) for k, v in fields.items()}
errors = n["connect"] + n["read"] + n["write"] + n["timeout"] + n["status"]
print(f'{n["requests"] / (n["duration_us"] / 1e6):.0f} {n["p99_us"] / 1000:.2f} {errors} {n["requests"] - n["status"]}')
PY
}

# run_redis_benchmark PORT REQUESTS: prints "rate p99_ms".
run_redis_benchmark() {
  redis-benchmark -h 127.0.0.1 -p "$1" -t incr -c "$clients" -n "$2" --csv |
    python3 -c '
import csv, sys
rows = [r for r in csv.reader(sys.stdin)]
row = next(r for r in rows if r and r[0] == "INCR")
print(f"{float(row[1]):.0f} {float(row[6]):.2f}")'
}

if $memory; then
  target=${INCREMENTS:-1000000}
  start_tally memory full
  port=$PORT pid=$PID
  rss_start=$(rss_kib "$pid")
  answered=0 errors=0
  while ((answered < target)); do
    read -r _ _ run_errors run_answered < <(NAMES=10000 run_wrk "$port" 10)
    answered=$((answered + run_answered)) errors=$((errors + run_errors))
  done
  rss_end=$(rss_kib "$pid")
  names=$("$tally" --db "$work/memory.db" --cache-dir "$work/cache" export | wc -l)
  echo "| increments answered | errors | names | RSS at start | RSS after |"
  echo "| ---: | ---: | ---: | ---: | ---: |"
  echo "| $answered | $errors | $names | $rss_start KiB | $rss_end KiB |"
  exit 0
fi

if $keys; then
  start_tally keys full
  port=$PORT
  KEYED=0 run_wrk "$port" 2 >/dev/null
  results=$work/keys.txt
  for round in $(seq "$rounds"); do
    for keyed in 0 1; do
      before=$(tally_value "$port")
      read -r rate p99 errors answered < <(KEYED=$keyed run_wrk "$port" "$seconds")
      counted=$(($(tally_value "$port") - before))
      echo "$keyed $rate $p99 $errors $answered $counted" >>"$results"
      echo "bench: round $round: keyed=$keyed: $rate/s, p99 $p99 ms, $errors errors" >&2
    done
  done
  python3 - "$results" "$clients" "$rounds" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
by = {}
for keyed, rate, p99, errors, answered, counted in rows:
    e = by.setdefault(keyed, {"rate": [], "p99": [], "errors": 0, "answered": 0, "counted": 0})
    e["rate"].append(float(rate)); e["p99"].append(float(p99))
    e["errors"] += int(errors); e["answered"] += int(answered); e["counted"] += int(counted)
base = statistics.median(by["0"]["rate"])
print(f"{sys.argv[2]} connections, tally serve --durability full, medians of {sys.argv[3]} interleaved runs")
print()
print("| requests | increments/s | p99 ms | errors | answered | counted | vs without keys |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for keyed, label in [("0", "without a key"), ("1", "a new Idempotency-Key each")]:
    e = by[keyed]
    rate = statistics.median(e["rate"])
    print(f"| {label} | {rate:.0f} | {statistics.median(e['p99']):.2f} | {e['errors']} | {e['answered']} | {e['counted']} | {rate / base:.2f}x |")
PY
  exit 0
fi

if [[ -n $soak ]]; then
  start_tally soak full
  port=$PORT pid=$PID
  wrk -t2 -c"$clients" -d2s -s "$root/scripts/wrk-increment.lua" "http://127.0.0.1:$port" >/dev/null
  before=$(tally_value "$port") rss_start=$(rss_kib "$pid")
  read -r rate p99 errors answered < <(run_wrk "$port" "$soak")
  after=$(tally_value "$port") rss_end=$(rss_kib "$pid")
  growth=$(python3 -c "print(f'{($rss_end - $rss_start) * 100 / $rss_start:+.1f}%')")
  echo "| seconds | clients | served | counted | errors | increments/s | p99 ms | RSS start | RSS end | growth |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  echo "| $soak | $clients | $answered | $((after - before)) | $errors | $rate | $p99 | $rss_start KiB | $rss_end KiB | $growth |"
  python3 -c "import sys; sys.exit(0 if $rss_end <= $rss_start * 1.10 else 1)" ||
    { echo "bench: the server's RSS grew more than 10%" >&2; exit 1; }
  # wrk stops counting with up to one request in flight per connection, which the server may
  # still apply: every answered increment is counted, and at most one more per connection.
  counted=$((after - before))
  ((counted >= answered && counted <= answered + clients)) ||
    { echo "bench: the counter grew by $counted for $answered answers" >&2; exit 1; }
  exit 0
fi

# One server of each kind for the whole run: what is measured is steady state.
start_tally full full;        tally_full=$PORT
start_tally relaxed relaxed;  tally_relaxed=$PORT
start_redis always always;    redis_always=$PORT
start_redis everysec everysec; redis_everysec=$PORT

# redis-benchmark takes a request count, not a duration: a short calibration run sets each
# server's count so its runs last about as long as wrk's.
declare -A requests
for name in always everysec; do
  port_var=redis_$name
  read -r rate _ < <(run_redis_benchmark "${!port_var}" 20000)
  requests[$name]=$((rate * seconds))
done
for port in $tally_full $tally_relaxed; do run_wrk "$port" 2 >/dev/null; done

results=$work/results.txt
for round in $(seq "$rounds"); do
  for config in "tally full $tally_full" "tally relaxed $tally_relaxed" \
    "redis always $redis_always" "redis everysec $redis_everysec"; do
    read -r server mode port <<<"$config"
    if [[ $server == tally ]]; then
      before=$(tally_value "$port")
      read -r rate p99 errors answered < <(run_wrk "$port" "$seconds")
      counted=$(($(tally_value "$port") - before))
    else
      before=$(redis_value "$port")
      answered=${requests[$mode]}
      read -r rate p99 < <(run_redis_benchmark "$port" "$answered")
      counted=$(($(redis_value "$port") - before))
      # redis-benchmark counts no errors of its own: every request it sent and did not see
      # counted is one.
      errors=$((answered - counted))
    fi
    echo "$round $server $mode $rate $p99 $errors $answered $counted" >>"$results"
    echo "bench: round $round: $server $mode: $rate/s, p99 $p99 ms, $errors errors" >&2
  done
done

python3 - "$results" "$clients" "$rounds" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
clients, rounds = sys.argv[2], sys.argv[3]
by = {}
for _, server, mode, rate, p99, errors, answered, counted in rows:
    entry = by.setdefault((server, mode), {"rate": [], "p99": [], "errors": 0, "answered": 0, "counted": 0})
    entry["rate"].append(float(rate)); entry["p99"].append(float(p99))
    entry["errors"] += int(errors); entry["answered"] += int(answered); entry["counted"] += int(counted)
pairs = [("tally", "full", "redis", "always"), ("tally", "relaxed", "redis", "everysec")]
print(f"{clients} connections, medians of {rounds} interleaved runs")
print()
print("| server | durability | increments/s | p99 ms | errors | answered | counted | vs Redis |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for tally, tmode, redis, rmode in pairs:
    base = statistics.median(by[(redis, rmode)]["rate"])
    for key, label in [((tally, tmode), f"--durability {tmode}"), ((redis, rmode), f"appendfsync {rmode}")]:
        e = by[key]
        rate = statistics.median(e["rate"])
        ratio = f"{rate / base:.2f}x" if key[0] == "tally" else "1.00x"
        print(f"| {key[0]} | {label} | {rate:.0f} | {statistics.median(e['p99']):.2f} | {e['errors']} | {e['answered']} | {e['counted']} | {ratio} |")
PY
