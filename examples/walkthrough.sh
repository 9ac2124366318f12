#!/usr/bin/env bash
# The README's walk-through as a script: every request it shows, against a running server, with each answer's
# status and Location printed; it stops at the first answer that is not the one the README describes. The README
# quotes its lines (tests/api/readme.rs fails when they differ), and CI runs it against a fresh server
# (`make walkthrough`).
#
#   BASE_URL  the server (default http://127.0.0.1:8080)
#   API_KEY   an account's key (default: a new account from `order-intake accounts create`, which needs
#             DATABASE_URL)
#
# Needs bash, curl and jq. It can run again against the same server: its idempotency keys are new each run.
set -euo pipefail

fail() { printf 'walkthrough: %s\n' "$*" >&2; exit 1; }

# `curl -si … | expect STATUS [LOCATION [replayed]]`: prints the status line, Location and Idempotent-Replayed of
# the answer on stderr and its body on stdout; fails unless the status is STATUS, Location starts with LOCATION
# and, with `replayed`, the answer is a replay.
expect() {
  local answer head status location replayed
  answer=$(cat)
  head=${answer%%$'\r\n\r\n'*}
  status=$(head -n1 <<<"$head" | tr -d '\r')
  location=$(sed -n 's/^location: *//Ip' <<<"$head" | tr -d '\r')
  replayed=$(sed -n 's/^idempotent-replayed: *true/replayed/Ip' <<<"$head" | tr -d '\r')
  printf '%s\n' "$status" >&2
  sed -n '/^\(location\|idempotent-replayed\):/Ip' <<<"$head" | tr -d '\r' | sed 's/^/  /' >&2
  [[ $status == "HTTP/1.1 $1 "* ]] || fail "expected $1: $answer"
  [[ $location == "${2-}"* ]] || fail "expected Location: $2…: $head"
  [[ $replayed == "${3-}" ]] || fail "expected ${3:-no} replay: $head"
  printf '%s' "${answer#*$'\r\n\r\n'}"
}

# `check [JQ OPTIONS] FILTER JSON`: fails unless the jq FILTER holds for JSON.
check() { jq -e "${@:1:$#-1}" <<<"${!#}" >/dev/null || fail "expected ${*:1:$#-1}: ${!#}"; }

API=${BASE_URL:-http://127.0.0.1:8080}
KEY=${API_KEY:-$(order-intake accounts create --name "Walk-through" | jq -r .api_key)}
run=$(date +%s%N)                     # makes this run's idempotency keys new
cd "$(mktemp -d)"                     # the files it writes
trap 'rm -rf "$PWD"' EXIT

# A template: HTML with {{field}} placeholders.
template=$(curl -si $API/v1/templates -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{
  "name": "Welcome postcard", "format": "postcard_a6",
  "content": "<p>Hello {{first_name}}, welcome to {{city}}!</p>"}' | expect 201 /v1/templates/)
check '.merge_fields == ["city", "first_name"] and .version == 1' "$template"
template_id=$(jq -r .id <<<"$template")

# An order printed from it, to be sent in a week.
order=$(curl -si $API/v1/orders -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d @- <<JSON |
{"template_id": "$template_id",
 "recipient": {"name": "Anna de Vries", "street": "Keizersgracht", "house_number": "123A",
               "postal_code": "1015 CJ", "city": "Amsterdam", "country": "NL"},
 "merge_variables": {"first_name": "Anna", "city": "Amsterdam"},
 "send_date": "$(date -u -d '+7 days' +%F)", "metadata": {"customer_id": "4711"}}
JSON
  expect 201 /v1/orders/)
check '.status == "received" and .template_version == 1' "$order"
order_id=$(jq -r .id <<<"$order")

# What it prints: its template version, filled in (HTML-escaped). Changing the template later does not change it.
html=$(curl -si $API/v1/orders/$order_id/render -H "Authorization: Bearer $KEY" | expect 200)
[[ $html == '<p>Hello Anna, welcome to Amsterdam!</p>' ]] || fail "rendered: $html"

# A preview of the template without taking an order, and the versions it has had.
html=$(curl -si $API/v1/templates/$template_id/render -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: application/json' -d '{"merge_variables": {"first_name": "Bram", "city": "Delft"}}' | expect 200)
[[ $html == '<p>Hello Bram, welcome to Delft!</p>' ]] || fail "previewed: $html"
versions=$(curl -si $API/v1/templates/$template_id/versions -H "Authorization: Bearer $KEY" | expect 200)
check '[.data[].version] == [1]' "$versions"

# Your orders for one customer.
orders=$(curl -si "$API/v1/orders?metadata[customer_id]=4711" -g -H "Authorization: Bearer $KEY" | expect 200)
check "any(.data[]; .id == \"$order_id\")" "$orders"

# List, newest first, a page at a time: the next page starts after the last id of this one.
page=$(curl -si "$API/v1/orders?limit=10&status=received" -H "Authorization: Bearer $KEY" | expect 200)
check '.data[0].status == "received" and (.has_more | type) == "boolean"' "$page"
last=$(jq -r '.data[-1].id' <<<"$page")
curl -si "$API/v1/orders?limit=10&starting_after=$last" -H "Authorization: Bearer $KEY" | expect 200 >/dev/null

# Change it while it is received; null removes the sender or the send date.
order=$(curl -si -X PATCH $API/v1/orders/$order_id -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: application/json' -d '{"send_date": null}' | expect 200)
check '.send_date == null' "$order"

# Cancel it: 200 with "status": "cancelled", and the same again on a repeat.
for _ in 1 2; do
  order=$(curl -si -X DELETE $API/v1/orders/$order_id -H "Authorization: Bearer $KEY" | expect 200)
  check '.status == "cancelled"' "$order"
done

# An order batch: a CSV file whose rows carry their own keys (customer-4711-… and customer-4712-…).
cat > mailing.csv <<CSV
idempotency_key,recipient.name,recipient.street,recipient.house_number,recipient.postal_code,recipient.city,recipient.country,merge_variables.first_name,merge_variables.city
customer-4711-$run,Anna de Vries,Keizersgracht,123A,1015 CJ,Amsterdam,NL,Anna,Amsterdam
customer-4712-$run,"Jansen, Piet",Damrak,1,1012 LG,Amsterdam,NL,Piet,Amsterdam
CSV
batch=$(curl -si "$API/v1/order_batches?template_id=$template_id" -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: text/csv' --data-binary @mailing.csv | expect 201 /v1/order_batches/)
check '.counts == {"rows": 2, "created": 2, "replayed": 0, "failed": 0}' "$batch"
check '[.results.data[] | .status] == [201, 201] and .results.has_more == false' "$batch"

# The same file again (tomorrow's export that still holds these customers): no new order, the same order_id for
# each row.
again=$(curl -si "$API/v1/order_batches?template_id=$template_id" -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: text/csv' --data-binary @mailing.csv | expect 201 /v1/order_batches/)
check '.counts == {"rows": 2, "created": 0, "replayed": 2, "failed": 0}' "$again"
[[ $(jq -c '[.results.data[].order_id]' <<<"$again") == "$(jq -c '[.results.data[].order_id]' <<<"$batch")" ]] ||
  fail "the replayed rows name other orders: $again"

# A file without keys: one order per address and mailing, whose keys are made of the mailing (this run), the
# postal code and the house number.
cat > addresses.csv <<CSV
metadata.mailing,recipient.name,recipient.street,recipient.house_number,recipient.postal_code,recipient.city,recipient.country,merge_variables.first_name,merge_variables.city
$run,Anna de Vries,Keizersgracht,123A,1015 CJ,Amsterdam,NL,Anna,Amsterdam
$run,Piet Jansen,Damrak,1,1012 LG,Amsterdam,NL,Piet,Amsterdam
CSV
batch=$(curl -si "$API/v1/order_batches?template_id=$template_id&key_from=metadata.mailing,recipient.postal_code,recipient.house_number" \
  -H "Authorization: Bearer $KEY" -H 'Content-Type: text/csv' --data-binary @addresses.csv | expect 201)
check '.counts == {"rows": 2, "created": 2, "replayed": 0, "failed": 0}' "$batch"
check --arg run "$run" '[.results.data[].idempotency_key] == [
  "metadata.mailing,recipient.postal_code,recipient.house_number:\($run)|1015%20cj|123A",
  "metadata.mailing,recipient.postal_code,recipient.house_number:\($run)|1012%20lg|1"]' "$batch"

# Exactly once: the first request with a key creates the order…
cat > order.json <<JSON
{"template_id": "$template_id", "recipient": {"name": "Anna de Vries", "street": "Keizersgracht",
 "house_number": "123A", "postal_code": "1015 CJ", "city": "Amsterdam", "country": "NL"},
 "merge_variables": {"first_name": "Anna", "city": "Amsterdam"}}
JSON
first=$(curl -si $API/v1/orders -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -H "Idempotency-Key: postcard-4711-$run" -d @order.json | expect 201 /v1/orders/)

# …a retry with the same key and body (after a timeout, say) creates nothing and replays that answer, with
# Idempotent-Replayed: true and the same Location…
retry=$(curl -si $API/v1/orders -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -H "Idempotency-Key: postcard-4711-$run" -d @order.json | expect 201 "/v1/orders/$(jq -r .id <<<"$first")" replayed)
[[ $retry == "$first" ]] || fail "the replay is not the same bytes: $retry"

# …and the same key with a different body is refused, and nothing runs.
jq '.merge_variables.first_name = "Anne"' order.json > another-order.json
refused=$(curl -si $API/v1/orders -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -H "Idempotency-Key: postcard-4711-$run" -d @another-order.json | expect 422)
check '.type == "/problems/idempotency-key-reused"' "$refused"

echo "walkthrough: every answer was the one the README describes" >&2
