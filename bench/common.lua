-- Shared by the wrk scripts: the order body, authentication, and a JSON summary printed when a run ends.
local M = {}

function M.order_body()
  return string.format(
    '{"template_id":"%s","recipient":{"name":"Anna de Vries","street":"Keizersgracht","house_number":"123A",'
      .. '"postal_code":"1015 CJ","city":"Amsterdam","country":"NL"},"merge_variables":{"first_name":"Anna"}}',
    os.getenv("TEMPLATE_ID"))
end

function M.headers()
  return {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("API_KEY"),
  }
end

-- Numbers the threads 1, 2, …, as `thread_id` in each thread's own state, so that their keys differ.
local threads = 0
function M.setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

-- One line of JSON that bench/report.py reads: requests, errors and latency percentiles in microseconds.
function M.done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end

return M
