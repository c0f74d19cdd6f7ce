-- wrk script for scripts/bench-service.sh and scripts/bench-ab.sh: every request is an increment
-- (`POST`, empty body: add 1), the request `redis-benchmark -t incr` makes of Redis. By default
-- all of them go to one counter, `bench`; with NAMES=N in the environment each goes to one of N
-- counters (`c0` .. `cN-1`) picked at random, to load the server with many names.
--
-- KEYED=1: every request carries its own `Idempotency-Key` (this wrk run's random nonce, the
-- thread and a sequence number, so no two requests of any run share one); KEYED=0: the same
-- request without the header, built the same way, so the two differ only in the key.
--
-- HIT=1 (scripts/bench-windows.sh): every request is a hit of the window `bench` instead
-- (`POST /windows/bench/hit`, one minute, a limit no run reaches, so every answer is a 200).
local names = tonumber(os.getenv("NAMES") or "")
local keyed = os.getenv("KEYED")
local hit = os.getenv("HIT") == "1"

local threads, nonce = 0, nil
function setup(thread)
  if not nonce then
    local urandom = assert(io.open("/dev/urandom", "rb"))
    nonce = urandom:read(8):gsub(".", function(c) return string.format("%02x", c:byte()) end)
    urandom:close()
  end
  thread:set("prefix", nonce .. "-" .. threads)
  threads = threads + 1
end

if hit then
  wrk.method = "POST"
  wrk.path = "/windows/bench/hit"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"window": "1m", "limit": 1000000000000}'
elseif keyed then
  function init()
    sent = 0
  end
  request = function()
    sent = sent + 1
    local headers = {}
    if keyed == "1" then
      headers["Idempotency-Key"] = prefix .. "-" .. sent
    end
    return wrk.format("POST", "/counters/bench/increment", headers)
  end
elseif names then
  request = function()
    return wrk.format("POST", "/counters/c" .. math.random(0, names - 1) .. "/increment")
  end
else
  wrk.method = "POST"
  wrk.path = "/counters/bench/increment"
end

-- One line wrk prints at the end, read by the scripts instead of wrk's formatted summary, so every
-- figure comes straight from wrk's own counters: requests, their duration, errors of each kind,
-- non-2xx answers, and the 99th percentile latency (microseconds).
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d connect=%d read=%d write=%d timeout=%d status=%d p99_us=%d\n",
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.timeout, errors.status, latency:percentile(99)))
end
