-- POST /v1/orders with a new Idempotency-Key on every request.
package.path = "bench/?.lua;" .. package.path
local common = require("common")

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local counter = 0
local prefix
function init(args)
  prefix = string.format("%s-%d-", os.getenv("RUN_ID") or "run", thread_id or 0)
end

local headers = common.headers()
local body = common.order_body()
function request()
  counter = counter + 1
  headers["Idempotency-Key"] = prefix .. counter
  return wrk.format("POST", "/v1/orders", headers, body)
end

done = common.done
