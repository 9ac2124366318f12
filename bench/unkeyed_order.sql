-- The statement the server sends for POST /v1/orders without a key, with the API key already checked
-- (API_KEY_CACHE_SECONDS): one INSERT that reads the template's latest version and writes the order, atomic by
-- itself, outside any transaction. Beside keyed_order.sql, the database's own price of a key row. The order's id is
-- made from two random numbers with immutable functions, as in keyed_order.sql, and the time the order was taken is a
-- parameter (bench/run passes the run's start), as the service sends it.
\set id_high random(0, 4611686018427387903)
\set id_low random(0, 4611686018427387903)
INSERT INTO orders (id, account_id, template_id, template_version, recipient, sender, merge_variables, send_date,
                    metadata, created_at, updated_at)
  SELECT (lpad(to_hex(:id_high::bigint), 16, '0') || lpad(to_hex(:id_low::bigint), 16, '0'))::uuid, v.account_id, v.template_id, v.version,
         '{"name":"Anna de Vries","company": null,"street":"Keizersgracht","house_number":"123A","postal_code":"1015 CJ","city":"Amsterdam","country":"NL"}',
         NULL, '{"first_name":"Anna"}', NULL, '{}', :taken_at, :taken_at
  FROM templates t
  JOIN template_versions v ON v.account_id = t.account_id AND v.template_id = t.id AND v.version = t.version
  WHERE t.account_id = :account_id AND v.account_id = :account_id AND t.id = :template_id
    AND v.merge_fields <@ ARRAY['first_name']
  RETURNING id, template_id, template_version, recipient, sender, merge_variables, send_date, status, metadata, created_at,
            updated_at, row_version;
