-- Orders: one mail piece, printed from a template for one recipient.

-- An address as the API accepts it: a JSON object with exactly these string members.
-- COALESCE: a missing member makes the conjunction NULL, which a CHECK would let through.
CREATE FUNCTION order_intake_is_address(a jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT COALESCE(jsonb_typeof(a) = 'object'
       AND NOT EXISTS (
               SELECT 1 FROM jsonb_object_keys(a) AS k
                WHERE k NOT IN ('name', 'company', 'street', 'house_number', 'postal_code', 'city', 'country'))
       AND jsonb_typeof(a -> 'name') = 'string' AND char_length(a ->> 'name') BETWEEN 1 AND 200
       AND (a -> 'company' IS NULL OR jsonb_typeof(a -> 'company') = 'null'
            OR (jsonb_typeof(a -> 'company') = 'string' AND char_length(a ->> 'company') BETWEEN 1 AND 200))
       AND jsonb_typeof(a -> 'street') = 'string' AND char_length(a ->> 'street') BETWEEN 1 AND 200
       AND jsonb_typeof(a -> 'house_number') = 'string' AND char_length(a ->> 'house_number') BETWEEN 1 AND 20
       AND jsonb_typeof(a -> 'postal_code') = 'string' AND char_length(a ->> 'postal_code') BETWEEN 1 AND 20
       AND jsonb_typeof(a -> 'city') = 'string' AND char_length(a ->> 'city') BETWEEN 1 AND 100
       AND jsonb_typeof(a -> 'country') = 'string' AND (a ->> 'country') ~ '^[A-Z]{2}$', false)
$$;

-- Merge variables: a JSON object whose values are all strings.
CREATE FUNCTION order_intake_is_string_map(m jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT COALESCE(jsonb_typeof(m) = 'object'
       AND NOT EXISTS (SELECT 1 FROM jsonb_each(m) AS e WHERE jsonb_typeof(e.value) <> 'string'), false)
$$;

CREATE TABLE orders (
    id               uuid        PRIMARY KEY,
    account_id       uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    template_id      uuid        NOT NULL,
    template_version integer     NOT NULL CONSTRAINT orders_template_version_positive CHECK (template_version >= 1),
    recipient        jsonb       NOT NULL CONSTRAINT orders_recipient_is_address CHECK (order_intake_is_address(recipient)),
    sender           jsonb       CONSTRAINT orders_sender_is_address CHECK (order_intake_is_address(sender)),
    merge_variables  jsonb       NOT NULL DEFAULT '{}'
                                 CONSTRAINT orders_merge_variables_is_string_map CHECK (order_intake_is_string_map(merge_variables)),
    send_date        date,
    status           text        NOT NULL DEFAULT 'received' CONSTRAINT orders_status_known CHECK (
                                     status IN ('received', 'processing', 'sent', 'cancelled')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- A send date is never before the day the order was taken (UTC).
    CONSTRAINT orders_send_date_not_before_creation CHECK (send_date >= (created_at AT TIME ZONE 'UTC')::date),
    -- Same account only; a template stays while any order refers to it.
    CONSTRAINT orders_template_fkey FOREIGN KEY (account_id, template_id)
        REFERENCES templates (account_id, id) ON DELETE RESTRICT
);

CREATE INDEX orders_account_id_id_idx ON orders (account_id, id DESC);
CREATE INDEX orders_account_id_status_id_idx ON orders (account_id, status, id DESC);
-- Serves the foreign key check when a template is deleted.
CREATE INDEX orders_account_id_template_id_idx ON orders (account_id, template_id);
