-- wrk script for bench_http.py: cycles through the app's routes and, when done, prints one
-- line "WRK_JSON {...}" with the exact figures (latencies in microseconds).
--   wrk -t2 -c8 -d10s --latency -s wrk_report.lua http://127.0.0.1:PORT

local paths = {
  "/users/1", "/items", "/users/42", "/users/7", "/items", "/users/1234",
  "/users/99", "/items", "/users/5", "/users/31337",
}
local requests = {}
local n = 0

init = function(args)
  for _, path in ipairs(paths) do
    requests[#requests + 1] = wrk.format("GET", path)
  end
end

request = function()
  n = n % #requests + 1
  return requests[n]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"mean_us": %.1f, "p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, ' ..
    '"max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
