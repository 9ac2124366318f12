-- A key row names the request it answers, so that a client can inspect a key (GET /v1/idempotency_keys/{key}):
-- the method and the path, ids included. NULL in rows stored before; those expire within the key TTL.
ALTER TABLE idempotency_keys
    ADD COLUMN request_method text CONSTRAINT idempotency_keys_request_method CHECK (request_method IN ('POST', 'PATCH')),
    ADD COLUMN request_path   text CONSTRAINT idempotency_keys_request_path CHECK (request_path LIKE '/%');
