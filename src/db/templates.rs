//! Templates, always scoped by account: the template row (its latest version's number, metadata and times)
//! joined with that version.

use sqlx::{PgConnection, PgExecutor, types::Json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Page, PageRequest, template_versions};
use crate::domain::{
    metadata::Metadata,
    template::{NewTemplate, Template, TemplateFormat, TemplateUpdate},
};

/// A template as it is read: the template row `t` joined with its latest version `v`.
struct TemplateRow {
    id: Uuid,
    name: String,
    format: TemplateFormat,
    content: String,
    merge_fields: Vec<String>,
    version: i32,
    metadata: Json<Metadata>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    row_version: i32,
}

impl From<TemplateRow> for Template {
    fn from(row: TemplateRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            format: row.format,
            content: row.content,
            merge_fields: row.merge_fields,
            version: row.version,
            metadata: row.metadata.0,
            created_at: row.created_at,
            updated_at: row.updated_at,
            row_version: row.row_version,
        }
    }
}

/// `sqlx::query_as!` into a [`TemplateRow`], with the columns of `t` (a template row) and `v` (its latest version)
/// between `$before` and `$after`, and the join between them after `$from`: the one place they are listed.
macro_rules! query_template {
    ($before:literal, $from:literal, $after:literal, $($arguments:tt)*) => {
        sqlx::query_as!(
            TemplateRow,
            $before
                + r#" t.id AS "id!", v.name AS "name!", v.format AS "format!: TemplateFormat", v.content AS "content!",
                      v.merge_fields AS "merge_fields!", t.version AS "version!",
                      t.metadata AS "metadata!: Json<Metadata>", t.created_at AS "created_at!",
                      t.updated_at AS "updated_at!", t.row_version AS "row_version!" "#
                + $from
                + r#" JOIN template_versions v
                        ON v.account_id = t.account_id AND v.template_id = t.id AND v.version = t.version "#
                + $after,
            $($arguments)*
        )
    };
}

/// Writes a template and its version 1.
#[tracing::instrument(skip_all, fields(%account_id))]
pub async fn insert(
    conn: &mut PgConnection,
    account_id: Uuid,
    new: &NewTemplate,
    metadata: &Metadata,
) -> Result<Template, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO templates (id, account_id, version, metadata) VALUES ($1, $2, 1, $3)",
        id,
        account_id,
        Json(metadata) as _,
    )
    .execute(&mut *conn)
    .await?;
    template_versions::insert(&mut *conn, account_id, id, 1, new).await?;
    let row = query_template!(
        "SELECT",
        "FROM templates t",
        "WHERE t.account_id = $1 AND t.id = $2",
        account_id,
        id,
    )
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

pub async fn find(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<Template>, sqlx::Error> {
    let row = query_template!(
        "SELECT",
        "FROM templates t",
        "WHERE t.account_id = $1 AND t.id = $2",
        account_id,
        id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Template::from))
}

/// The template, locked until the transaction ends so that it cannot change under a read-modify-write.
///
/// The lock is taken alone, then the template read: a locking read joined with its version would, after waiting
/// for a concurrent PATCH, recheck the template's new row against the version row it had read before, which no
/// longer matches, and find nothing (PostgreSQL, 13.2.1, Read Committed).
pub async fn find_for_update(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<Template>, sqlx::Error> {
    let locked = sqlx::query_scalar!(
        r#"SELECT 1 AS "locked!" FROM templates WHERE account_id = $1 AND id = $2 FOR UPDATE"#,
        account_id,
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if locked.is_none() {
        return Ok(None);
    }
    find(conn, account_id, id).await
}

/// Whether the account has this template.
pub async fn exists(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM templates WHERE account_id = $1 AND id = $2) AS "exists!""#,
        account_id,
        id,
    )
    .fetch_one(db)
    .await
}

/// Locks the templates of `ids` that belong to the account against changes and deletion until the transaction
/// ends (`FOR SHARE`, in id order), so that an order batch reads their latest versions after it and the versions
/// stay; gives back the ids found.
pub async fn lock_many(
    conn: &mut PgConnection,
    account_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM templates WHERE account_id = $1 AND id = ANY($2) ORDER BY id FOR SHARE",
        account_id,
        ids,
    )
    .fetch_all(conn)
    .await
}

pub async fn list(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    page: &PageRequest<Uuid>,
) -> Result<Page<Template>, sqlx::Error> {
    let (keys, fetch) = (page.keys, page.fetch());
    let rows = if page.backward {
        query_template!(
            "SELECT",
            "FROM templates t",
            "WHERE t.account_id = $1 AND t.id BETWEEN $2 AND $3 ORDER BY t.id LIMIT $4",
            account_id,
            keys.lowest,
            keys.highest,
            fetch,
        )
        .fetch_all(db)
        .await?
    } else {
        query_template!(
            "SELECT",
            "FROM templates t",
            "WHERE t.account_id = $1 AND t.id BETWEEN $2 AND $3 ORDER BY t.id DESC LIMIT $4",
            account_id,
            keys.lowest,
            keys.highest,
            fetch,
        )
        .fetch_all(db)
        .await?
    };
    Ok(page.page(rows))
}

/// Writes a PATCH of a template locked with [`find_for_update`]: its next version, when there is one, and its
/// metadata.
#[tracing::instrument(skip_all, fields(%account_id, template_id = %current.id))]
pub async fn update(
    conn: &mut PgConnection,
    account_id: Uuid,
    current: &Template,
    update: &TemplateUpdate,
) -> Result<Template, sqlx::Error> {
    let mut version = current.version;
    if let Some(next) = &update.version {
        version += 1;
        template_versions::insert(&mut *conn, account_id, current.id, version, next).await?;
    }
    let row = query_template!(
        r#"WITH t AS (
               UPDATE templates SET version = $3, metadata = $4, updated_at = now(),
                                    row_version = row_version + 1
               WHERE account_id = $1 AND id = $2
               RETURNING *)
           SELECT"#,
        "FROM t",
        // The CTE's rows carry the account, but Citus routes the join to one shard only when the versions are
        // filtered on the distribution column too.
        "WHERE v.account_id = $1",
        account_id,
        current.id,
        version,
        Json(&update.metadata) as _,
    )
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// What deleting a template did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    NotFound,
    InUse { orders: i64 },
}

/// Deletes a template, with its versions, when no order refers to any of them.
#[tracing::instrument(skip_all, fields(%account_id, template_id = %id))]
pub async fn delete(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Deletion, sqlx::Error> {
    // Locking the template holds off a concurrent PATCH, which would add a version under the delete.
    let orders = sqlx::query_scalar!(
        r#"SELECT (SELECT count(*) FROM orders WHERE account_id = $1 AND template_id = $2) AS "orders!"
           FROM templates WHERE account_id = $1 AND id = $2 FOR UPDATE"#,
        account_id,
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    match orders {
        None => return Ok(Deletion::NotFound),
        Some(orders) if orders > 0 => return Ok(Deletion::InUse { orders }),
        Some(_) => {}
    }
    let deleted = sqlx::query!(
        "DELETE FROM templates WHERE account_id = $1 AND id = $2",
        account_id,
        id
    )
    .execute(&mut *conn)
    .await;
    match deleted {
        Ok(_) => Ok(Deletion::Deleted),
        // An order committed between the count and the delete: its foreign key keeps the version, and so the
        // template.
        Err(error) if super::is_foreign_key_violation(&error) => Ok(Deletion::InUse { orders: 1 }),
        Err(error) => Err(error),
    }
}
