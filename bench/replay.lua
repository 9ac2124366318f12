-- POST /v1/orders with keys that were used before (bench/run warms them up): every answer is a replay.
package.path = "bench/?.lua;" .. package.path
local common = require("common")

local keys = tonumber(os.getenv("REPLAY_KEYS") or "256")
setup = common.setup

local counter = 0
function init(args)
  counter = (thread_id or 0) * 7919
end

local headers = common.headers()
local body = common.order_body()
function request()
  counter = counter + 1
  headers["Idempotency-Key"] = "replay-" .. (counter % keys)
  return wrk.format("POST", "/v1/orders", headers, body)
end

done = common.done
