-- An order's row version: 1 when taken, one more with every change of the row. It is the order's entity tag
-- (ETag, RFC 9110 section 8.8.3), so that If-Match can refuse a change made against an older state.
-- The UPDATE statements bump it themselves (no trigger: triggers on distributed tables are off by default on Citus).
ALTER TABLE orders
    ADD COLUMN row_version integer NOT NULL DEFAULT 1
        CONSTRAINT orders_row_version_positive CHECK (row_version >= 1);
