//! Template versions, always scoped by account: written once, never updated.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::{Page, PageRequest};
use crate::domain::template::{NewTemplate, TemplateFormat, TemplateVersion};

/// `sqlx::query_as!` into a [`TemplateVersion`], with the version's columns (of `v`) between `$before` and
/// `$after`: the one place they are listed.
macro_rules! query_version {
    ($before:literal, $after:literal, $($arguments:tt)*) => {
        sqlx::query_as!(
            TemplateVersion,
            $before
                + r#" v.template_id, v.version, v.name, v.format AS "format: TemplateFormat", v.content,
                      v.merge_fields, v.created_at "#
                + $after,
            $($arguments)*
        )
    };
}

/// Writes one version; a version that exists already is a unique violation of the primary key.
#[tracing::instrument(skip_all, fields(%account_id, %template_id, version))]
pub async fn insert(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    template_id: Uuid,
    version: i32,
    new: &NewTemplate,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO template_versions (account_id, template_id, version, name, format, content, merge_fields)
           VALUES ($1, $2, $3, $4, $5, $6, $7)"#,
        account_id,
        template_id,
        version,
        new.name,
        new.format as TemplateFormat,
        new.content.html,
        &new.content.merge_fields,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A version of a template of the account; `None` for `version` asks for the latest.
pub async fn find(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    template_id: Uuid,
    version: Option<i32>,
) -> Result<Option<TemplateVersion>, sqlx::Error> {
    query_version!(
        "SELECT",
        r#"FROM templates t
           JOIN template_versions v
             ON v.account_id = t.account_id AND v.template_id = t.id AND v.version = COALESCE($3, t.version)
           WHERE t.account_id = $1 AND t.id = $2"#,
        account_id,
        template_id,
        version,
    )
    .fetch_optional(db)
    .await
}

/// What an order needs of the version it is taken against.
#[derive(Debug, Clone)]
pub struct VersionForOrder {
    pub version: i32,
    pub merge_fields: Vec<String>,
}

/// The number and merge fields of a version ([`find`] without its content); `None` for `version` asks for the
/// latest.
///
/// Nothing is locked: a version never changes, and the order's foreign key to it keeps it (and its template)
/// from being deleted once the order is written. A PATCH that adds a version meanwhile leaves this one as it is.
pub async fn find_for_order(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    template_id: Uuid,
    version: Option<i32>,
) -> Result<Option<VersionForOrder>, sqlx::Error> {
    sqlx::query_as!(
        VersionForOrder,
        r#"SELECT v.version, v.merge_fields
           FROM templates t
           JOIN template_versions v
             ON v.account_id = t.account_id AND v.template_id = t.id AND v.version = COALESCE($3, t.version)
           WHERE t.account_id = $1 AND t.id = $2"#,
        account_id,
        template_id,
        version,
    )
    .fetch_optional(db)
    .await
}

/// The latest version of each of the account's templates among `ids`, by template id; ids of no such template are
/// left out. Read after [`super::templates::lock_many`], the versions are the latest and stay so until the
/// transaction ends.
pub async fn find_many_for_order(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, VersionForOrder)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT v.template_id, v.version, v.merge_fields
           FROM templates t
           JOIN template_versions v ON v.account_id = t.account_id AND v.template_id = t.id AND v.version = t.version
           WHERE t.account_id = $1 AND t.id = ANY($2)"#,
        account_id,
        ids,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let version = VersionForOrder {
                version: row.version,
                merge_fields: row.merge_fields,
            };
            (row.template_id, version)
        })
        .collect())
}

/// A page of a template's versions, newest first.
pub async fn list(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    template_id: Uuid,
    page: &PageRequest<i32>,
) -> Result<Page<TemplateVersion>, sqlx::Error> {
    let (keys, fetch) = (page.keys, page.fetch());
    let rows = if page.backward {
        query_version!(
            "SELECT",
            "FROM template_versions v
             WHERE v.account_id = $1 AND v.template_id = $2 AND v.version BETWEEN $3 AND $4
             ORDER BY v.version LIMIT $5",
            account_id,
            template_id,
            keys.lowest,
            keys.highest,
            fetch,
        )
        .fetch_all(db)
        .await?
    } else {
        query_version!(
            "SELECT",
            "FROM template_versions v
             WHERE v.account_id = $1 AND v.template_id = $2 AND v.version BETWEEN $3 AND $4
             ORDER BY v.version DESC LIMIT $5",
            account_id,
            template_id,
            keys.lowest,
            keys.highest,
            fetch,
        )
        .fetch_all(db)
        .await?
    };
    Ok(page.page(rows))
}
