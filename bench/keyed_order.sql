-- The statements the server sends for a keyed POST /v1/orders whose key is new, in the same order: authenticate,
-- then one transaction that looks the key up and reads the template's latest version, writes the order and
-- the key row.
\set n random(1, 1000000000000)
SELECT id, account_id, coalesce(last_used_at <= now() - make_interval(secs => 60), true) AS use_due
  FROM api_keys WHERE key_hash = decode(:key_hash, 'hex') AND revoked_at IS NULL;
BEGIN;
DO $$BEGIN SET LOCAL citus.propagate_set_commands = local; EXECUTE format('SET LOCAL lock_timeout = %L', current_setting('lock_timeout')); END$$;
SELECT fingerprint, response_status, response_headers, response_body, expires_at <= now() AS expired
  FROM idempotency_keys WHERE account_id = :account_id AND key = 'pgbench-' || :client_id || '-' || :n;
SELECT v.version, v.merge_fields FROM templates t
  JOIN template_versions v ON v.account_id = t.account_id AND v.template_id = t.id AND v.version = COALESCE(NULL, t.version)
  WHERE t.account_id = :account_id AND t.id = :template_id;
INSERT INTO orders (id, account_id, template_id, template_version, recipient, sender, merge_variables, send_date,
                    metadata)
  VALUES (gen_random_uuid(), :account_id, :template_id, 1,
          '{"name":"Anna de Vries","company": null,"street":"Keizersgracht","house_number":"123A","postal_code":"1015 CJ","city":"Amsterdam","country":"NL"}',
          NULL, '{"first_name":"Anna"}', NULL, '{}')
  RETURNING id, template_id, template_version, recipient, sender, merge_variables, send_date, status, metadata, created_at,
            updated_at;
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
