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

-- Listing is newest first within an account; UUIDv7 ids are time-ordered.
CREATE INDEX order_batches_account_id_id_idx ON order_batches (account_id, id DESC);
-- Finds the unfinished batch of a re-sent request.
CREATE UNIQUE INDEX order_batches_unfinished_key_idx ON order_batches (account_id, idempotency_key)
    WHERE completed_at IS NULL AND idempotency_key IS NOT NULL;

CREATE TABLE order_batch_rows (
    account_id      uuid     NOT NULL,
    batch_id        uuid     NOT NULL,
    -- 1-based, as in the file (the header of a CSV file is not counted).
    row_number      integer  NOT NULL CONSTRAINT order_batch_rows_row_number_positive CHECK (row_number >= 1),
    -- NULL when the row had no usable key.
    idempotency_key text,
    -- The HTTP status a single POST /v1/orders would have had.
    status          smallint NOT NULL CHECK (status BETWEEN 100 AND 599),
    order_id        uuid,
    replayed        boolean  NOT NULL,
    -- The problem document (RFC 9457) of a failed row.
    error           jsonb,
    PRIMARY KEY (account_id, batch_id, row_number)
);

SELECT order_intake_distribute('order_batches', 'account');
SELECT order_intake_distribute('order_batch_rows', 'account');

-- Between co-located tables, added alone in a DO block as on Citus a change of a distributed table must be.
DO $$
BEGIN
    ALTER TABLE order_batch_rows ADD CONSTRAINT order_batch_rows_batch_fkey FOREIGN KEY (account_id, batch_id)
        REFERENCES order_batches (account_id, id) ON DELETE CASCADE;
END
$$;
