-- Ceiling (b): the order row and its key row (with the stored response) in one statement, a data-modifying CTE:
-- atomic by itself, one round trip, no explicit transaction. A key used before fails the statement, order and all.
\set n random(1, 1000000000000)
WITH order_row AS (
  INSERT INTO orders (id, account_id, template_id, template_version, recipient, sender, merge_variables, send_date)
    VALUES ((lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
             || substr(replace(gen_random_uuid()::text, '-', ''), 13))::uuid,
            :account_id, :template_id, 1,
            '{"name":"Anna de Vries","company": null,"street":"Keizersgracht","house_number":"123A","postal_code":"1015 CJ","city":"Amsterdam","country":"NL"}',
            NULL, '{"first_name":"Anna"}', NULL)
    RETURNING id
)
INSERT INTO idempotency_keys (account_id, key, fingerprint, response_status, response_headers, response_body,
                              expires_at)
  SELECT :account_id, 'ceiling-' || :client_id || '-' || :n, sha256(:n::text::bytea), 201,
         '[["content-type","application/json"],["location","/v1/orders/019ac9f1-1a2b-7c3d-8e4f-5a6b7c8d9e0f"]]',
         convert_to(repeat('x', 480), 'UTF8'), now() + interval '24 hours'
    FROM order_row;
