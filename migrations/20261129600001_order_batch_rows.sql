-- The result of each row of an order batch, in file order.
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

SELECT order_intake_distribute('order_batch_rows', 'account');

-- Between co-located tables, added alone in a DO block as on Citus a change of a distributed table must be.
DO $$
BEGIN
    ALTER TABLE order_batch_rows ADD CONSTRAINT order_batch_rows_batch_fkey FOREIGN KEY (account_id, batch_id)
        REFERENCES order_batches (account_id, id) ON DELETE CASCADE;
END
$$;
