-- API keys get a lifecycle: several live keys per account (rotation without downtime), a short non-secret prefix
-- to recognise a key by, revocation, and when a key was last used. api_keys stays a reference table on Citus.
ALTER TABLE api_keys
    -- `oik_` and the first 8 hex digits of the secret (32 of its 256 bits); NULL for keys made before it was kept.
    ADD COLUMN prefix       text        CONSTRAINT api_keys_prefix_format CHECK (prefix ~ '^oik_[0-9a-f]{8}$'),
    -- A revoked key authenticates nothing; the row stays, so that its history can be listed.
    ADD COLUMN revoked_at   timestamptz,
    -- Recorded at most once a minute per key, so that authentication writes no row per request.
    ADD COLUMN last_used_at timestamptz;
