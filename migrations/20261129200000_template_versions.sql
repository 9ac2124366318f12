-- Template versions: one row per version of a template, written once and never updated, so that an order can
-- always be printed from the content it was taken against. The template row keeps only what is not printed (its
-- id, account, metadata and times) and points at its latest version with `version`.
CREATE TABLE template_versions (
    account_id   uuid        NOT NULL,
    template_id  uuid        NOT NULL,
    version      integer     NOT NULL CONSTRAINT template_versions_version_positive CHECK (version >= 1),
    name         text        NOT NULL CONSTRAINT template_versions_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    format       text        NOT NULL CONSTRAINT template_versions_format_known CHECK (
                                 format IN ('postcard_a6', 'postcard_a5', 'postcard_square', 'greeting_card', 'letter_a4')),
    content      text        NOT NULL CONSTRAINT template_versions_content_size CHECK (octet_length(content) BETWEEN 1 AND 524288),
    merge_fields text[]      NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, template_id, version)
);

-- On Citus, distributed by account_id and co-located with templates and orders (20261129000001), before any foreign
-- key joins it to them. From here on, each statement that changes a distributed table runs alone in a DO block,
-- for the reason given at the end of 20261129000001.
SELECT order_intake_distribute('template_versions', 'account');

-- A template's versions go with it; orders keep it (and so its versions) while they refer to one of them.
DO $$
BEGIN
    ALTER TABLE template_versions
        ADD CONSTRAINT template_versions_template_fkey FOREIGN KEY (account_id, template_id)
            REFERENCES templates (account_id, id) ON DELETE CASCADE;
END
$$;

-- Back-fill. Until now a PATCH overwrote the template, so only the content of each template's current version is
-- known. Each template gets that version, dated when it was written (its updated_at). Orders taken against an
-- older version keep the version number they recorded, but its content is lost: such a version is recreated from
-- the current content, dated now, so that the orders can refer to it (README, "Template versions"). Its merge
-- fields may then not match the order's merge variables, and rendering that order says which are missing.
DO $$
BEGIN
    INSERT INTO template_versions (account_id, template_id, version, name, format, content, merge_fields, created_at)
    SELECT account_id, id, version, name, format, content, merge_fields, updated_at
      FROM templates;

    INSERT INTO template_versions (account_id, template_id, version, name, format, content, merge_fields, created_at)
    SELECT DISTINCT o.account_id, o.template_id, o.template_version, t.name, t.format, t.content, t.merge_fields, now()
      FROM orders o
      JOIN templates t ON t.account_id = o.account_id AND t.id = o.template_id
     WHERE o.template_version <> t.version;

    -- An order refers to the version it was taken against, in its own account; a version stays while orders refer
    -- to it. This replaces the reference to the template (20261129000001), which the version's own reference
    -- implies.
    ALTER TABLE orders
        ADD CONSTRAINT orders_template_version_fkey FOREIGN KEY (account_id, template_id, template_version)
            REFERENCES template_versions (account_id, template_id, version) ON DELETE RESTRICT;
    ALTER TABLE orders DROP CONSTRAINT orders_template_fkey;

    -- Serves the foreign key check when a template (and so its versions) is deleted.
    DROP INDEX orders_account_id_template_id_idx;
    CREATE INDEX orders_account_id_template_id_template_version_idx
        ON orders (account_id, template_id, template_version);

    ALTER TABLE templates
        DROP COLUMN name,
        DROP COLUMN format,
        DROP COLUMN content,
        DROP COLUMN merge_fields;
END
$$;
