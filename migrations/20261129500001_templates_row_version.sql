-- A template's row version: 1 when created, one more with every change of the template row, a new version or
-- metadata alone. It is the template's entity tag (ETag, RFC 9110 section 8.8.3): `version` counts only the
-- changes that write a new template version, so a metadata-only PATCH would otherwise keep the tag of a different
-- body. The UPDATE statements bump it themselves (no trigger: triggers on distributed tables are off by default on
-- Citus).
ALTER TABLE templates
    ADD COLUMN row_version integer NOT NULL DEFAULT 1
        CONSTRAINT templates_row_version_positive CHECK (row_version >= 1);
