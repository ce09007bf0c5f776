-- wrk script for the FrostGate benchmark (driven by bench/run.py).
--
-- Arguments (after `--` on the wrk command line):
--   1 mode     "defend" (one event per request) or "ingest" ({"events": [...]} batches)
--   2 path     request path, e.g. /v1/defend
--   3 prefix   event_id prefix, unique per wrk invocation (run token + phase)
--   4 key      bearer token ("-" for none)
--   5 batch    events per ingest request (ignored for defend)
--
-- Every event carries a fresh event_id (prefix + thread + counter), so no request is an
-- idempotent replay, and a varying src_ip / failed_auths count, so nothing downstream can
-- serve a cached answer. response() counts 2xx and non-2xx per thread; done() prints one
-- machine-readable line starting with "FGBENCH " that run.py parses.

local threads = {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end

local mode, path, prefix, headers, batch
local n = 0

function init(args)
  mode = args[1] or "defend"
  path = args[2] or "/v1/defend"
  prefix = (args[3] or "bench") .. "-" .. tostring(tid) .. "-"
  local key = args[4] or "-"
  batch = tonumber(args[5] or "1000")
  headers = { ["Content-Type"] = "application/json" }
  if key ~= "-" then
    headers["Authorization"] = "Bearer " .. key
  end
  ok = 0
  non2xx = 0
  codes = {}
  -- Seed per thread; ids do not depend on the random stream (they use the counter).
  math.randomseed(os.time() * 1000 + tid * 7919)
end

local function event(id)
  return string.format(
    '{"event_id":"%s%d","source":"sshd","event_type":"auth.failed",'
      .. '"payload":{"src_ip":"%d.%d.%d.%d","failed_auths":%d}}',
    prefix, id,
    math.random(11, 223), math.random(0, 255), math.random(0, 255), math.random(1, 254),
    math.random(1, 20))
end

function request()
  local body
  if mode == "ingest" then
    local parts = {}
    for i = 1, batch do
      n = n + 1
      parts[i] = event(n)
    end
    body = '{"events":[' .. table.concat(parts, ",") .. "]}"
  else
    n = n + 1
    body = event(n)
  end
  return wrk.format("POST", path, headers, body)
end

function response(status, hdrs, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    non2xx = non2xx + 1
    codes[status] = (codes[status] or 0) + 1
  end
end

local function codes_string(t)
  local out = {}
  for code, count in pairs(t) do
    table.insert(out, string.format("%d:%d", code, count))
  end
  return table.concat(out, ",")
end

function done(summary, latency, requests)
  local total_ok, total_bad = 0, 0
  local merged = {}
  for _, t in ipairs(threads) do
    total_ok = total_ok + (t:get("ok") or 0)
    total_bad = total_bad + (t:get("non2xx") or 0)
    local c = t:get("codes")
    if type(c) == "table" then
      for code, count in pairs(c) do
        merged[code] = (merged[code] or 0) + count
      end
    end
  end
  local e = summary.errors
  io.write(string.format(
    'FGBENCH {"requests":%d,"duration_us":%d,"bytes":%d,"ok":%d,"non2xx":%d,'
      .. '"codes":"%s","errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,'
      .. '"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes, total_ok, total_bad,
    codes_string(merged), e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
