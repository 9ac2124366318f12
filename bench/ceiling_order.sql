-- Ceiling (a): the order row alone, one INSERT, nothing else; the least an unkeyed order can cost the database.
-- Into the tables of the schema bench/run puts on search_path (bench/ceiling_tables.sql), never the service's.
-- The id is time-ordered like the service's UUIDv7 ids (milliseconds first), so index inserts land at the right edge.
INSERT INTO orders (id, account_id, template_id, template_version, recipient, sender, merge_variables, send_date)
  VALUES ((lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
           || substr(replace(gen_random_uuid()::text, '-', ''), 13))::uuid,
          :account_id, :template_id, 1,
          '{"name":"Anna de Vries","company": null,"street":"Keizersgracht","house_number":"123A","postal_code":"1015 CJ","city":"Amsterdam","country":"NL"}',
          NULL, '{"first_name":"Anna"}', NULL);
