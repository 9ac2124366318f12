-- The physical line a CSV record starts on, so that a row can be found in a text editor; NULL for a JSON batch.
-- Alone in its migration, as on Citus a change of a distributed table must be.
ALTER TABLE order_batch_rows ADD COLUMN line integer CONSTRAINT order_batch_rows_line_positive CHECK (line >= 1);
