-- POST /v1/orders without an Idempotency-Key.
package.path = "bench/?.lua;" .. package.path
local common = require("common")

wrk.method = "POST"
wrk.path = "/v1/orders"
wrk.body = common.order_body()
wrk.headers = common.headers()
done = common.done
