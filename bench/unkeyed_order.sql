-- The statements the server sends for POST /v1/orders without a key, in the same order: authenticate, then one
-- transaction with the template lock and the order. Beside keyed_order.sql, the database's own price of a key row.
SELECT account_id FROM api_keys WHERE key_hash = decode(:key_hash, 'hex');
BEGIN;
SELECT version, merge_fields FROM templates WHERE account_id = :account_id AND id = :template_id FOR SHARE;
INSERT INTO orders (id, account_id, template_id, template_version, recipient, sender, merge_variables, send_date)
  VALUES (gen_random_uuid(), :account_id, :template_id, 1,
          '{"name":"Anna de Vries","company": null,"street":"Keizersgracht","house_number":"123A","postal_code":"1015 CJ","city":"Amsterdam","country":"NL"}',
          NULL, '{"first_name":"Anna"}', NULL)
  RETURNING id, template_id, template_version, recipient, sender, merge_variables, send_date, status, created_at, updated_at;
COMMIT;
