-- Templates: HTML with {{field}} placeholders, printed in one of a fixed set of formats.
CREATE TABLE templates (
    id           uuid        PRIMARY KEY,
    account_id   uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         text        NOT NULL CONSTRAINT templates_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    format       text        NOT NULL CONSTRAINT templates_format_known CHECK (
                                 format IN ('postcard_a6', 'postcard_a5', 'postcard_square', 'greeting_card', 'letter_a4')),
    content      text        NOT NULL CONSTRAINT templates_content_size CHECK (octet_length(content) BETWEEN 1 AND 524288),
    merge_fields text[]      NOT NULL DEFAULT '{}',
    version      integer     NOT NULL DEFAULT 1 CONSTRAINT templates_version_positive CHECK (version >= 1),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- Lets orders reference (account_id, id), so an order can only use a template of its own account.
    CONSTRAINT templates_account_id_id_key UNIQUE (account_id, id)
);

-- Listing is newest first within an account; UUIDv7 ids are time-ordered.
CREATE INDEX templates_account_id_id_idx ON templates (account_id, id DESC);
