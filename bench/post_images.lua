-- wrk script: POST the images in $AIDETECT_BENCH_IMAGES (files 000.img, 001.img, ...) in turn, one
-- per request, and print one JSON line of totals and latency percentiles (microseconds) at the end.
local files = {}
local dir = os.getenv("AIDETECT_BENCH_IMAGES")
while true do
  local f = io.open(string.format("%s/%03d.img", dir, #files), "rb")
  if f == nil then break end
  files[#files + 1] = f:read("*all")
  f:close()
end
assert(#files > 0, "no images in " .. tostring(dir))

local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/octet-stream"}, files[(n % #files) + 1])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "p50_us": %d, "p95_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95)))
end
