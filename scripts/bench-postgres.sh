#!/usr/bin/env bash
# tally on PostgreSQL against the statements a hand-written service would send the same server,
# in one run: pgbench running `UPDATE c SET n = n + 1 WHERE k = $1 RETURNING n` and the upsert
# `INSERT ... ON CONFLICT (k) DO UPDATE SET n = c.n + 1 RETURNING n` (a service that creates
# counters on first use), against `tally serve --store postgres://` over HTTP (wrk,
# scripts/wrk-increment.lua) and RESP (redis-benchmark -t incr), all with the same number of
# connections. Two servers: a primary with a synchronous standby (synchronous_standby_names='*',
# every commit waits for the standby) and one alone; two workloads: one hot counter, and
# increments spread over 10,000 names. Three rounds, interleaved (every configuration once per
# round, so a noisy moment of the shared machine hits all of them); the table shows medians, and
# each tally figure divided by the faster of the two pgbench statements.
#
# Every figure is measured: rates from the clients' own counts (pgbench's processed
# transactions, wrk's completed requests, redis-benchmark's CSV) and "counted" read back from the
# database afterwards (the growth of the counters' sum), which must equal what the client was
# answered (wrk: plus at most one request per connection still in flight when it stopped).
#
# Each tally run also reads the mean commit batch (writes per transaction) from the server's
# `/metrics` (`tally_commit_batch_size`). BASELINE=PATH runs another build's servers beside this
# one's (their own schema, same PostgreSQL servers) in the same rounds, and prints a second table:
# this build against it, rates and batch sizes, for an A/B of a change to the writer.
#
#   ./setup --bench && scripts/bench-postgres.sh      (CLIENTS=32 SECONDS_EACH=5 REQUESTS=20000 ROUNDS=3)
#   cp target/release/tally /tmp/tally-before   # ... change ...
#   BASELINE=/tmp/tally-before scripts/bench-postgres.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
clients=${CLIENTS:-32}
seconds=${SECONDS_EACH:-5}
requests=${REQUESTS:-20000}
rounds=${ROUNDS:-3}
baseline=${BASELINE:-}
[[ -z $baseline || -x $baseline ]] || { echo "bench: BASELINE $baseline is not a program" >&2; exit 1; }
for tool in wrk redis-benchmark python3 curl; do
  command -v $tool >/dev/null || { echo "bench: $tool is missing; run ./setup --bench" >&2; exit 1; }
done
pg_bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
[[ -x $pg_bin/pgbench ]] || { echo "bench: PostgreSQL's pgbench is missing; run ./setup --bench" >&2; exit 1; }

# shellcheck source=lib/servers.sh
source "$root/scripts/lib/servers.sh"
# The servers run as the postgres user when this is root (initdb refuses root).
chmod 755 "$work"
as_server_user() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
postgres_dirs=()
stop_postgres() {
  for dir in "${postgres_dirs[@]}"; do as_server_user "$pg_bin/pg_ctl" -D "$dir" -m immediate stop >/dev/null 2>&1 || true; done
}
trap 'stop_postgres; cleanup' EXIT

# give_server_user DIR: a new directory the server's user owns.
give_server_user() {
  mkdir -p "$1"
  chmod 700 "$1"
  if [[ $(id -u) == 0 ]]; then chown postgres "$1"; fi
}

# configure DIR PORT SETTINGS...: the server's address and settings appended to its configuration.
configure() {
  local dir=$1 port=$2
  shift 2
  {
    echo "port = $port"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$work/logs'"
    echo "max_connections = 200"
    printf '%s\n' "$@"
  } >>"$dir/postgresql.conf"
}

start_postgres_in() {
  local dir=$1
  as_server_user "$pg_bin/pg_ctl" -D "$dir" -l "$work/logs/$(basename "$dir").log" -w start >/dev/null
  postgres_dirs+=("$dir")
}

# start_postgres NAME SETTINGS...: a new server; sets PORT.
start_postgres() {
  local name=$1 dir=$work/$1
  shift
  give_server_user "$dir"
  as_server_user "$pg_bin/initdb" -A trust -U postgres -D "$dir" >/dev/null
  PORT=$(free_port)
  configure "$dir" "$PORT" "$@"
  start_postgres_in "$dir"
}

# start_standby NAME PRIMARY_PORT: a streaming standby of the server on PRIMARY_PORT; sets PORT.
start_standby() {
  local dir=$work/$1
  give_server_user "$dir"
  as_server_user "$pg_bin/pg_basebackup" -h 127.0.0.1 -p "$2" -U postgres -D "$dir" -R -X stream
  PORT=$(free_port)
  configure "$dir" "$PORT" "synchronous_standby_names = ''"
  start_postgres_in "$dir"
}

sql() { "$pg_bin/psql" -X -At -h 127.0.0.1 -p "$1" -U postgres -d postgres -v ON_ERROR_STOP=1 -c "$2"; }

# The hand-written service's tables: `c` with every counter created beforehand (what an UPDATE
# needs), `u` empty (the upsert creates its counters).
prepare_tables() {
  sql "$1" "CREATE TABLE c (k text PRIMARY KEY, n bigint NOT NULL);
            INSERT INTO c SELECT 'n' || i, 0 FROM generate_series(0, 9999) i;
            INSERT INTO c VALUES ('hot', 0);
            CREATE TABLE u (k text PRIMARY KEY, n bigint NOT NULL);" >/dev/null
}

scripts=$work/pgbench
mkdir -p "$scripts"
echo "UPDATE c SET n = n + 1 WHERE k = 'hot' RETURNING n;" >"$scripts/update-hot.sql"
echo "INSERT INTO u VALUES ('hot', 1) ON CONFLICT (k) DO UPDATE SET n = u.n + 1 RETURNING n;" >"$scripts/upsert-hot.sql"
printf '%s\n' '\set i random(0, 9999)' "UPDATE c SET n = n + 1 WHERE k = 'n' || :i RETURNING n;" >"$scripts/update-names.sql"
printf '%s\n' '\set i random(0, 9999)' "INSERT INTO u VALUES ('n' || :i, 1) ON CONFLICT (k) DO UPDATE SET n = u.n + 1 RETURNING n;" >"$scripts/upsert-names.sql"

# start_tally_on NAME URL [BINARY SCHEMA]: `tally serve` (this build, or BINARY) over the
# database at URL (schema tally_bench, or SCHEMA); sets HTTP and RESP to its ports.
start_tally_on() {
  local name=$1
  "${3:-$tally}" --store "$2" --postgres-schema "${4:-tally_bench}" --cache-dir "$work/cache-$name" \
    serve --listen 127.0.0.1:0 --resp 127.0.0.1:0 >"$work/$name.out" 2>"$work/$name.log" &
  pids+=("$!")
  for _ in $(seq 100); do
    if [[ $(sed -n 2p "$work/$name.out" 2>/dev/null) == "listening on redis://"* ]]; then
      HTTP=$(sed -n 1p "$work/$name.out") HTTP=${HTTP##*:}
      RESP=$(sed -n 2p "$work/$name.out") RESP=${RESP##*:}
      return
    fi
    sleep 0.1
  done
  echo "bench: tally serve did not start; see $work/$name.log" >&2
  exit 1
}

# The sum of every counter in a table: what the increments added up to.
hand_sum() { sql "$1" "SELECT coalesce(sum(n), 0) FROM $2"; }
tally_sum() { sql "$1" "SELECT coalesce(sum(convert_from(value, 'UTF8')::numeric), 0) FROM ${2:-tally_bench}.counters" 2>/dev/null || echo 0; }

# batches HTTP_PORT: "writes commits" committed so far, from the server's /metrics.
batches() {
  curl -sf "http://127.0.0.1:$1/metrics" | awk '
    /^tally_commit_batch_size_sum / {sum = $2} /^tally_commit_batch_size_count / {count = $2}
    END {printf "%d %d\n", sum, count}'
}

# run_pgbench PORT SCRIPT: prints "rate answered".
run_pgbench() {
  "$pg_bin/pgbench" -h 127.0.0.1 -p "$1" -U postgres -n -c "$clients" -j 2 -T "$seconds" -f "$2" postgres 2>/dev/null |
    python3 -c '
import re, sys
text = sys.stdin.read()
rate = float(re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text).group(1))
done = int(re.search(r"number of transactions actually processed: (\d+)", text).group(1))
print(f"{rate:.0f} {done}")'
}

# run_wrk PORT [NAMES]: prints "rate answered" (non-2xx answers and errors are not answered).
run_wrk() {
  NAMES=${2:-} wrk -t2 -c"$clients" -d"${seconds}s" -s "$root/scripts/wrk-increment.lua" \
    "http://127.0.0.1:$1" | grep '^WRK_RESULT' | python3 -c '
import sys
fields = dict(item.split("=") for item in sys.stdin.read().split()[1:])
n = {k: int(v) for k, v in fields.items()}
print("%.0f %d" % (n["requests"] / (n["duration_us"] / 1e6), n["requests"] - n["status"]))'
}

# run_redis_benchmark PORT [NAMES]: prints "rate answered".
run_redis_benchmark() {
  local spread=()
  [[ -n ${2:-} ]] && spread=(-r "$2")
  redis-benchmark -h 127.0.0.1 -p "$1" -t incr -c "$clients" -n "$requests" "${spread[@]}" --csv 2>/dev/null |
    python3 -c '
import csv, sys
row = next(r for r in csv.reader(sys.stdin) if r and r[0] == "INCR")
print(f"{float(row[1]):.0f} '"$requests"'")'
}

give_server_user "$work/logs"
start_postgres primary "synchronous_standby_names = '*'"
primary=$PORT
start_standby standby "$primary"
for _ in $(seq 100); do
  [[ $(sql "$primary" "SELECT sync_state FROM pg_stat_replication") == sync ]] && break
  sleep 0.1
done
[[ $(sql "$primary" "SELECT sync_state FROM pg_stat_replication") == sync ]] ||
  { echo "bench: the standby is not synchronous" >&2; exit 1; }
start_postgres alone
alone=$PORT
for port in $primary $alone; do prepare_tables "$port"; done
start_tally_on tally-standby "postgresql://postgres@127.0.0.1:$primary/postgres"
declare -A http resp
http[standby]=$HTTP resp[standby]=$RESP
start_tally_on tally-alone "postgresql://postgres@127.0.0.1:$alone/postgres"
http[alone]=$HTTP resp[alone]=$RESP
tally_clients=(http resp)
if [[ -n $baseline ]]; then
  start_tally_on base-standby "postgresql://postgres@127.0.0.1:$primary/postgres" "$baseline" tally_base
  http[base-standby]=$HTTP resp[base-standby]=$RESP
  start_tally_on base-alone "postgresql://postgres@127.0.0.1:$alone/postgres" "$baseline" tally_base
  http[base-alone]=$HTTP resp[base-alone]=$RESP
  tally_clients+=(http-base resp-base)
fi
declare -A server=([standby]=$primary [alone]=$alone)
# Warm-up: connections, compiled component, the tables' pages, the upsert's first inserts.
for setup in standby alone; do
  seconds=1 run_pgbench "${server[$setup]}" "$scripts/upsert-names.sql" >/dev/null
  seconds=1 run_wrk "${http[$setup]}" 10000 >/dev/null
  [[ -z $baseline ]] || seconds=1 run_wrk "${http[base-$setup]}" 10000 >/dev/null
done

results=$work/results.txt
for round in $(seq "$rounds"); do
  for setup in standby alone; do
    port=${server[$setup]}
    for workload in hot names; do
      names=$([[ $workload == names ]] && echo 10000 || true)
      for client in update upsert "${tally_clients[@]}"; do
        # The tally server a client drives (this build's, or BASELINE's), and its schema.
        instance=$setup schema=tally_bench
        [[ $client == *-base ]] && instance=base-$setup schema=tally_base
        case $client in
          update) table=c before=$(hand_sum "$port" c) ;;
          upsert) table=u before=$(hand_sum "$port" u) ;;
          *) before=$(tally_sum "$port" "$schema") batches_before=$(batches "${http[$instance]}") ;;
        esac
        case $client in
          update | upsert) read -r rate answered < <(run_pgbench "$port" "$scripts/$client-$workload.sql") ;;
          http*) read -r rate answered < <(run_wrk "${http[$instance]}" "$names") ;;
          resp*) read -r rate answered < <(run_redis_benchmark "${resp[$instance]}" "$names") ;;
        esac
        batch=-
        case $client in
          update | upsert) counted=$(($(hand_sum "$port" "$table") - before)) ;;
          *)
            counted=$(($(tally_sum "$port" "$schema") - before))
            read -r writes commits < <(batches "${http[$instance]}")
            read -r writes_before commits_before <<<"$batches_before"
            batch=$(python3 -c "print(f'{($writes - $writes_before) / max(1, $commits - $commits_before):.1f}')")
            ;;
        esac
        echo "$setup $workload $client $rate $answered $counted $batch" >>"$results"
        echo "bench: round $round, $setup, $workload, $client: $rate/s, answered $answered, counted $counted, batch $batch" >&2
      done
    done
  done
done

python3 - "$results" "$clients" "$rounds" "$baseline" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
clients, rounds, baseline = int(sys.argv[2]), sys.argv[3], sys.argv[4]
by = {}
for setup, workload, client, rate, answered, counted, batch in rows:
    entry = by.setdefault((setup, workload, client), {"rate": [], "batch": [], "exact": True})
    entry["rate"].append(float(rate))
    if batch != "-":
        entry["batch"].append(float(batch))
    answered, counted = int(answered), int(counted)
    # wrk stops with up to one request per connection in flight, which the server may apply.
    slack = clients if client.startswith("http") else 0
    entry["exact"] &= answered <= counted <= answered + slack
med = lambda setup, workload, client, field="rate": statistics.median(by[(setup, workload, client)][field])
setups = (("standby", "primary + synchronous standby"), ("alone", "one server"))
workloads = (("hot", "one hot counter"), ("names", "10,000 names"))
print(f"{clients} connections each, medians of {rounds} interleaved rounds; ratio = tally / the faster pgbench statement; "
      "batch = writes per commit (HTTP, RESP)\n")
print("| server | counters | pgbench UPDATE/s | pgbench upsert/s | tally HTTP/s | tally RESP/s | HTTP ratio | RESP ratio | batch | every increment counted |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for setup, label in setups:
    for workload, counters in workloads:
        update, upsert = med(setup, workload, "update"), med(setup, workload, "upsert")
        http, resp = med(setup, workload, "http"), med(setup, workload, "resp")
        best = max(update, upsert)
        exact = all(entry["exact"] for key, entry in by.items() if key[:2] == (setup, workload))
        batches = f"{med(setup, workload, 'http', 'batch'):.1f}, {med(setup, workload, 'resp', 'batch'):.1f}"
        print(f"| {label} | {counters} | {update:,.0f} | {upsert:,.0f} | {http:,.0f} | {resp:,.0f} | "
              f"{http / best:.1f}x | {resp / best:.1f}x | {batches} | {'yes' if exact else 'NO'} |")
if baseline:
    print(f"\nThis build against BASELINE ({baseline}), same rounds:\n")
    print("| server | counters | HTTP/s | BASELINE HTTP/s | ratio | RESP/s | BASELINE RESP/s | ratio | batch (HTTP, RESP) | BASELINE batch |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for setup, label in setups:
        for workload, counters in workloads:
            m = lambda client, field="rate": med(setup, workload, client, field)
            print(f"| {label} | {counters} | {m('http'):,.0f} | {m('http-base'):,.0f} | {m('http') / m('http-base'):.2f}x | "
                  f"{m('resp'):,.0f} | {m('resp-base'):,.0f} | {m('resp') / m('resp-base'):.2f}x | "
                  f"{m('http', 'batch'):.1f}, {m('resp', 'batch'):.1f} | {m('http-base', 'batch'):.1f}, {m('resp-base', 'batch'):.1f} |")
PY
