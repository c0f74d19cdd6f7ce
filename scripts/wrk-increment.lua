-- wrk script for scripts/bench-service.sh: every request is `POST /counters/bench/increment`
-- (an empty body adds 1), the request `redis-benchmark -t incr` makes of Redis.
wrk.method = "POST"
wrk.path = "/counters/bench/increment"

-- One line wrk prints at the end, read by the script instead of wrk's formatted summary, so every
-- figure comes straight from wrk's own counters: requests, their duration, errors of each kind,
-- non-2xx answers, and the 99th percentile latency (microseconds).
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d connect=%d read=%d write=%d timeout=%d status=%d p99_us=%d\n",
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.timeout, errors.status, latency:percentile(99)))
end
