-- The statements the server sends for POST /v1/orders without a key, in the same order: authenticate, then one
-- transaction that reads the template's latest version and writes the order. Beside keyed_order.sql, the
-- database's own price of a key row.
SELECT id, account_id, coalesce(last_used_at <= now() - make_interval(secs => 60), true) AS use_due
  FROM api_keys WHERE key_hash = decode(:key_hash, 'hex') AND revoked_at IS NULL;
BEGIN;
DO $$BEGIN SET LOCAL citus.propagate_set_commands = local; EXECUTE format('SET LOCAL lock_timeout = %L', current_setting('lock_timeout')); END$$;
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
COMMIT;
