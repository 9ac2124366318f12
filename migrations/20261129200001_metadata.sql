-- Metadata: the client's own key/value pairs on orders and templates (a customer id, a campaign), at most 20
-- string values, keys of 1 to 40 characters without square brackets (they delimit the key in
-- `?metadata[key]=value`), values of at most 500 characters: the limits of Stripe and Lob.
CREATE FUNCTION order_intake_is_metadata(m jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT COALESCE(jsonb_typeof(m) = 'object'
       AND (SELECT count(*) FROM jsonb_object_keys(m)) <= 20
       AND NOT EXISTS (
               SELECT 1 FROM jsonb_each(m) AS e
                WHERE jsonb_typeof(e.value) <> 'string'
                   OR char_length(e.key) NOT BETWEEN 1 AND 40
                   OR e.key ~ '[][]'
                   OR char_length(e.value #>> '{}') > 500), false)
$$;

-- On Citus, each statement that changes a distributed table runs alone in a DO block (see the end of
-- 20261129000001); the function above, which the checks use, is created on the workers too.
DO $$
BEGIN
    ALTER TABLE orders
        ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'
            CONSTRAINT orders_metadata_is_metadata CHECK (order_intake_is_metadata(metadata));
    ALTER TABLE templates
        ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'
            CONSTRAINT templates_metadata_is_metadata CHECK (order_intake_is_metadata(metadata));
END
$$;

-- `GET /v1/orders?metadata[key]=value` asks `account_id = $1 AND metadata @> $2`. A GIN index over both columns
-- (btree_gin gives uuid a GIN operator class) answers the two conditions in one index scan, within the account:
-- a GIN index on metadata alone also finds the matching rows of every other account, to be filtered out after.
-- On Citus, CREATE EXTENSION on the coordinator creates it on the workers too, where each shard's index needs it.
CREATE EXTENSION IF NOT EXISTS btree_gin;
DO $$
BEGIN
    CREATE INDEX orders_account_id_metadata_idx ON orders USING gin (account_id, metadata jsonb_path_ops);
END
$$;
