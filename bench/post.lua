-- wrk script: POST one fixed JSON body (the first argument after `--`) on every request, and
-- print one machine-readable summary line when the run is done. wrk counts a response with a
-- status of 400 or more in summary.errors.status (no per-response hook, so no extra cost).
-- A first argument "@PATH" reads the body from a file (too large for a command line); a
-- second argument sends a V2 binary body: it is the Inference-Header-Content-Length.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  local body = args[1]
  if string.sub(body, 1, 1) == "@" then
    local file = assert(io.open(string.sub(body, 2), "rb"))
    body = file:read("*a")
    file:close()
  end
  wrk.body = body
  if args[2] ~= nil then
    wrk.headers["Inference-Header-Content-Length"] = args[2]
    wrk.headers["Content-Type"] = "application/octet-stream"
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"status_errors":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
