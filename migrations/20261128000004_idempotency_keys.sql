-- Idempotency keys: the first outcome of a keyed POST or PATCH, stored in the same transaction as its write.
CREATE TABLE idempotency_keys (
    account_id       uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key              text        NOT NULL CONSTRAINT idempotency_keys_key_format CHECK (key ~ '^[ -~]{1,255}$'),
    -- SHA-256 of method, path and canonical JSON body.
    fingerprint      bytea       NOT NULL CHECK (octet_length(fingerprint) = 32),
    created_at       timestamptz NOT NULL DEFAULT now(),
    response_status  smallint    NOT NULL CHECK (response_status BETWEEN 100 AND 599),
    -- [[name, value], ...] as the endpoint set them.
    response_headers jsonb       NOT NULL DEFAULT '[]',
    response_body    bytea       NOT NULL,
    PRIMARY KEY (account_id, key)
);

-- Serves the sweeper, which deletes the oldest rows first.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
