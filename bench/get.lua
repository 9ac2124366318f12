-- GET /v1/orders/{id} of one existing order.
package.path = "bench/?.lua;" .. package.path
local common = require("common")

wrk.method = "GET"
wrk.path = "/v1/orders/" .. os.getenv("ORDER_ID")
wrk.headers = { ["Authorization"] = "Bearer " .. os.getenv("API_KEY") }
done = common.done
