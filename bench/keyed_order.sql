-- The statements the server sends for a keyed POST /v1/orders whose key is new, in the same order, with the API
-- key already checked (API_KEY_CACHE_SECONDS): the key lookup, then one transaction that writes the order against
-- the template's latest version, read in the same statement, and the key row. On plain PostgreSQL the
-- transaction begins with a bare BEGIN (db::Begin). The order's id is made from two random numbers with immutable
-- functions, as the service sends its own: a volatile gen_random_uuid() in the SELECT would make Citus pull the
-- SELECT to the coordinator instead of running the whole statement on one shard. The time the order was taken is a
-- parameter (bench/run passes the run's start), as the service sends it: Citus 13.2 fails on now() in the SELECT list
-- of an INSERT ... SELECT it runs on one shard ("missing FROM-clause entry for table orders").
\set n random(1, 1000000000000)
\set id_high random(0, 4611686018427387903)
\set id_low random(0, 4611686018427387903)
SELECT fingerprint, response_status, response_headers, response_body, expires_at <= now() AS expired
  FROM idempotency_keys WHERE account_id = :account_id AND key = 'pgbench-' || :client_id || '-' || :n;
BEGIN;
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
INSERT INTO idempotency_keys (account_id, key, fingerprint, response_status, response_headers, response_body,
                              expires_at, request_method, request_path)
  VALUES (:account_id, 'pgbench-' || :client_id || '-' || :n, sha256(:n::text::bytea), 201,
          '[["content-type","application/json"],["location","/v1/orders/019ac9f1-1a2b-7c3d-8e4f-5a6b7c8d9e0f"]]',
          convert_to(repeat('x', 480), 'UTF8'), now() + make_interval(secs => 86400), 'POST', '/v1/orders')
  ON CONFLICT (account_id, key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
        response_status = EXCLUDED.response_status, response_headers = EXCLUDED.response_headers,
        response_body = EXCLUDED.response_body, request_method = EXCLUDED.request_method,
        request_path = EXCLUDED.request_path
    WHERE idempotency_keys.expires_at <= EXCLUDED.created_at
  RETURNING true;
COMMIT;
