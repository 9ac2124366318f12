-- A key's expiry is a property of the key, fixed when it is stored: lookup, take-over and the sweeper read it, so
-- a server or a one-off sweep started with another IDEMPOTENCY_KEY_TTL_SECONDS cannot shorten the life of keys
-- that others still replay. A changed setting applies to new keys only.
--
-- On Citus, each statement that changes a distributed table runs alone in a DO block (see the end of
-- 20261129000001).
DO $$
BEGIN
    ALTER TABLE idempotency_keys ADD COLUMN expires_at timestamptz;
    -- Keys stored before this migration had the default retention of 24 hours. Computed in UTC: `timestamptz +
    -- interval` depends on the session's TimeZone (it is STABLE), and Citus refuses a STABLE function over a
    -- column in an UPDATE that the workers run; in UTC, which has no daylight saving, the result is the same.
    UPDATE idempotency_keys SET expires_at = (created_at AT TIME ZONE 'UTC' + interval '24 hours') AT TIME ZONE 'UTC';
    -- Two statements: Citus runs ADD CONSTRAINT only as the one subcommand of its ALTER TABLE.
    ALTER TABLE idempotency_keys ALTER COLUMN expires_at SET NOT NULL;
    ALTER TABLE idempotency_keys
        ADD CONSTRAINT idempotency_keys_expires_after_creation CHECK (expires_at > created_at);

    -- Serves the sweeper, which deletes the keys that expired first.
    CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);
    DROP INDEX idempotency_keys_created_at_idx;
END
$$;
