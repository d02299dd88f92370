-- wrk script for every benchmark scenario. The request comes from the environment:
--   BENCH_METHOD  GET or POST
--   BENCH_PATH    the path, may hold @ID0@..@ID4@
--   BENCH_BODY    the body (POST), may hold @ID0@..@ID4@
-- @IDk@ becomes base + k, and base moves on by 5 every request, cycling per thread through its own
-- block of ids: no two in-flight requests share an id, so no gateway can merge identical calls.
-- At the end one line "BENCH_RESULT {...}" gives the counts and latencies as JSON.

local ID_BLOCK = 50000
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local method = os.getenv("BENCH_METHOD") or "GET"
local path_template = os.getenv("BENCH_PATH") or "/"
local body_template = os.getenv("BENCH_BODY")
local headers = {}
if body_template then
  headers["Content-Type"] = "application/json"
  headers["Accept"] = "application/json"
end

local counter = 0
graphql_errors = 0

local function fill(template, base)
  return (template:gsub("@ID(%d)@", function(k) return tostring(base + tonumber(k)) end))
end

function request()
  local base = (tid or 0) * ID_BLOCK + 1 + (counter * 5) % ID_BLOCK
  counter = counter + 1
  local body = body_template and fill(body_template, base) or nil
  return wrk.format(method, fill(path_template, base), headers, body)
end

function response(status, headers, body)
  -- A GraphQL error (partial data or none) counts even when the status is 200.
  if body and string.find(body, '"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
  end
end

function done(summary, latency, requests)
  local gql = 0
  for _, thread in ipairs(threads) do
    gql = gql + (thread:get("graphql_errors") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"graphql_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, gql))
end
