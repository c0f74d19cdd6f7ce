# Sourced by the benchmark scripts (with $root set to the repository): builds the release binary,
# makes a work directory that is removed on exit together with every server started in it, and
# starts tally and redis-server on free loopback ports.

cargo build --release --quiet
tally="$root/target/release/tally"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_tally NAME DURABILITY [resp]: `tally serve` on a new database; sets PID, and PORT to its
# HTTP port, or with `resp` to the port of its RESP listener.
start_tally() {
  local name=$1 durability=$2 line=1 prefix="listening on http://" resp=()
  if [[ ${3:-} == resp ]]; then
    resp=(--resp 127.0.0.1:0) line=2 prefix="listening on redis://"
  fi
  "$tally" --db "$work/$name.db" --cache-dir "$work/cache" --durability "$durability" \
    serve --listen 127.0.0.1:0 "${resp[@]}" >"$work/$name.out" 2>"$work/$name.log" &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 100); do
    if said=$(sed -n "${line}p" "$work/$name.out" 2>/dev/null) && [[ $said == "$prefix"* ]]; then
      PORT=${said##*:}
      return
    fi
    sleep 0.1
  done
  echo "bench: tally serve did not start; see $work/$name.log" >&2
  exit 1
}

# start_redis NAME FSYNC: a redis-server with an append-only file; sets PORT and PID.
start_redis() {
  local name=$1 fsync=$2
  PORT=$(free_port)
  mkdir -p "$work/$name"
  redis-server --port "$PORT" --bind 127.0.0.1 --dir "$work/$name" --save '' \
    --appendonly yes --appendfsync "$fsync" --maxmemory-policy noeviction >/dev/null &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 100); do
    redis-cli -p "$PORT" PING >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "bench: redis-server did not start" >&2
  exit 1
}
