-- wrk script for `scripts/bench-service.sh --memory`: every request increments one of 10,000
-- counters (`c0` .. `c9999`), picked at random, so the server's memory is measured with many
-- names, not one. Prints the same WRK_RESULT line as wrk-increment.lua.
local names = 10000

request = function()
  return wrk.format("POST", "/counters/c" .. math.random(0, names - 1) .. "/increment")
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d connect=%d read=%d write=%d timeout=%d status=%d p99_us=%d\n",
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.timeout, errors.status, latency:percentile(99)))
end
