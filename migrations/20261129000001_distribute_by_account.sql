-- Every row belongs to one account, and every key says so: the primary key, each unique constraint and each foreign
-- key between account-owned tables lead with account_id. On Citus that is what lets a table be distributed by
-- account_id (a distributed table's unique constraints must include its distribution column), and it keeps all rows
-- of an account, and so every request's statements, on one shard. On plain PostgreSQL nothing else changes.

-- Templates: (account_id, id) becomes the primary key, so the unique constraint that orders referenced goes.
-- The foreign key from orders to templates comes back below, once both tables are distributed (Citus cannot
-- distribute a table that a local table references).
ALTER TABLE orders DROP CONSTRAINT orders_template_fkey;
ALTER TABLE templates DROP CONSTRAINT templates_pkey;
ALTER TABLE templates DROP CONSTRAINT templates_account_id_id_key;
ALTER TABLE templates ADD CONSTRAINT templates_pkey PRIMARY KEY (account_id, id);
-- The primary key serves newest-first listing too (a B-tree is read backwards).
DROP INDEX templates_account_id_id_idx;

ALTER TABLE orders DROP CONSTRAINT orders_pkey;
ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY (account_id, id);
DROP INDEX orders_account_id_id_idx;

-- idempotency_keys already has PRIMARY KEY (account_id, key).

-- order_intake_distribute(table, how): on a database with the citus extension, makes `table` a Citus table;
-- elsewhere it does nothing, so the same migrations run on plain PostgreSQL and on a Citus coordinator.
--   how = 'reference': a reference table, copied to every node (accounts, api_keys: read by every request, written
--                      rarely).
--   how = 'account':   distributed by hash of account_id, co-located with templates, so that an account's rows of
--                      every table share one shard and a request's transaction stays on one worker. Tables it
--                      references must be distributed or reference tables already.
-- A later migration that adds an account-owned table (with account_id in its keys) creates it, then
--   SELECT order_intake_distribute('new_table', 'account');
-- and only then adds foreign keys to other distributed tables, in a DO block (see the end of this file).
CREATE FUNCTION order_intake_distribute(target regclass, how text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- Checked first, so that a wrong call fails on plain PostgreSQL too.
    IF how NOT IN ('reference', 'account') THEN
        RAISE EXCEPTION 'order_intake_distribute: how must be reference or account, not %', how;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    IF how = 'reference' THEN
        EXECUTE format('SELECT create_reference_table(%L)', target);
    ELSE
        -- templates is the first table distributed by account; every later one joins its co-location group.
        EXECUTE format('SELECT create_distributed_table(%L, %L, colocate_with => %L)', target, 'account_id',
                       CASE WHEN target = 'templates'::regclass THEN 'none' ELSE 'templates' END);
    END IF;
END
$$;

-- Referenced tables first: foreign keys point from distributed tables to reference tables.
SELECT order_intake_distribute('accounts', 'reference');
SELECT order_intake_distribute('api_keys', 'reference');
SELECT order_intake_distribute('templates', 'account');
SELECT order_intake_distribute('orders', 'account');
SELECT order_intake_distribute('idempotency_keys', 'account');

-- Between co-located tables each shard of orders checks its own shard of templates: same account only, and a
-- template stays while any order refers to it.
--
-- On Citus, a statement that changes a distributed table runs alone, as here in a DO block: sqlx sends a migration
-- file as one query string, and Citus passes the string of such a statement on to the workers, which refuse several
-- statements in one prepared statement ("cannot insert multiple commands into a prepared statement").
DO $$
BEGIN
    ALTER TABLE orders ADD CONSTRAINT orders_template_fkey FOREIGN KEY (account_id, template_id)
        REFERENCES templates (account_id, id) ON DELETE RESTRICT;
END
$$;
