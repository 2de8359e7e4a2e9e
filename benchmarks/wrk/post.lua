-- wrk script: POST the file named by BODY_FILE (JSON) to the URL's path; with BODY_FILES
-- (comma-separated "path=file" pairs) rotate through several endpoints and bodies.
-- At the end print one line "WRK_RESULT {json}" with counts and latency percentiles (us).
local requests = {}

local function read(name)
  local f = assert(io.open(name, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

init = function(args)
  local headers = {["Content-Type"] = "application/json"}
  local key = os.getenv("API_KEY")
  if key and key ~= "" then headers["X-API-Key"] = key end
  local many = os.getenv("BODY_FILES")
  if many and many ~= "" then
    for pair in string.gmatch(many, "[^,]+") do
      local path, file = string.match(pair, "^(.-)=(.*)$")
      table.insert(requests, wrk.format("POST", path, headers, read(file)))
    end
  else
    table.insert(requests, wrk.format("POST", nil, headers, read(os.getenv("BODY_FILE"))))
  end
end

local counter = 0
request = function()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end

done = function(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
