-- Order batches: a file of orders, each row taken as a keyed POST /v1/orders, and what became of every row.
-- Every key includes account_id: on Citus both tables are distributed by account, co-located with orders and
-- idempotency_keys, so a batch's chunk (its orders, key rows and row results) commits on one shard.
CREATE TABLE order_batches (
    account_id      uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id              uuid        NOT NULL,
    -- The batch request's own Idempotency-Key: a re-sent batch that never finished carries on in the same batch.
    idempotency_key text        CONSTRAINT order_batches_idempotency_key_format CHECK (idempotency_key ~ '^[ -~]{1,255}$'),
    row_count       integer     NOT NULL CHECK (row_count >= 0),
    created_count   integer     NOT NULL DEFAULT 0 CHECK (created_count >= 0),
    replayed_count  integer     NOT NULL DEFAULT 0 CHECK (replayed_count >= 0),
    failed_count    integer     NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- NULL while rows are still being taken (or when the server stopped in the middle).
    completed_at    timestamptz,
    PRIMARY KEY (account_id, id)
);
-- On Citus, distributed by account_id and co-located with orders and idempotency_keys (one distribution per file:
-- Citus sends a later change of a distributed table to the workers with the whole file's text).
SELECT order_intake_distribute('order_batches', 'account');

-- After distribution each statement that changes the table runs alone in a DO block: on Citus a table with a foreign
-- key to a reference table is a Citus table from its creation, and a change of it is sent to the workers with the
-- text it came in.
-- Listing is newest first within an account; UUIDv7 ids are time-ordered.
DO $$
BEGIN
    CREATE INDEX order_batches_account_id_id_idx ON order_batches (account_id, id DESC);
END
$$;
-- Finds the unfinished batch of a re-sent request.
DO $$
BEGIN
    CREATE UNIQUE INDEX order_batches_unfinished_key_idx ON order_batches (account_id, idempotency_key)
        WHERE completed_at IS NULL AND idempotency_key IS NOT NULL;
END
$$;
