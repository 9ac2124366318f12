-- POST /v1/orders with a new Idempotency-Key on every request: KEY_PREFIX (new for every run) plus thread and counter.
package.path = "bench/?.lua;" .. package.path
local common = require("common")

setup = common.setup

local counter = 0
local prefix
function init(args)
  prefix = string.format("%s-%d-", assert(os.getenv("KEY_PREFIX"), "KEY_PREFIX is not set"), thread_id or 0)
end

local headers = common.headers()
local body = common.order_body()
function request()
  counter = counter + 1
  headers["Idempotency-Key"] = prefix .. counter
  return wrk.format("POST", "/v1/orders", headers, body)
end

done = common.done
