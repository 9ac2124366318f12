//! Templates, always scoped by account.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::{Page, PageRequest};
use crate::domain::template::{NewTemplate, Template, TemplateFormat};

/// `sqlx::query_as!` into a [`Template`], with the template's columns between `$before` and `$after`: the one
/// place they are listed.
macro_rules! query_template {
    ($before:literal, $after:literal, $($arguments:tt)*) => {
        sqlx::query_as!(
            Template,
            $before
                + r#" id, name, format AS "format: TemplateFormat", content, merge_fields, version, created_at,
                      updated_at "#
                + $after,
            $($arguments)*
        )
    };
}

#[tracing::instrument(skip_all, fields(%account_id))]
pub async fn insert(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    new: &NewTemplate,
) -> Result<Template, sqlx::Error> {
    query_template!(
        r#"INSERT INTO templates (id, account_id, name, format, content, merge_fields)
           VALUES ($1, $2, $3, $4, $5, $6)
           RETURNING"#,
        "",
        Uuid::now_v7(),
        account_id,
        new.name,
        new.format as TemplateFormat,
        new.content.html,
        &new.content.merge_fields,
    )
    .fetch_one(db)
    .await
}

pub async fn find(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<Template>, sqlx::Error> {
    query_template!(
        "SELECT",
        "FROM templates WHERE account_id = $1 AND id = $2",
        account_id,
        id,
    )
    .fetch_optional(db)
    .await
}

/// The template, locked until the transaction ends so that it cannot change under a read-modify-write.
pub async fn find_for_update(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<Template>, sqlx::Error> {
    query_template!(
        "SELECT",
        "FROM templates WHERE account_id = $1 AND id = $2 FOR UPDATE",
        account_id,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// What an order needs of its template.
#[derive(Debug, Clone)]
pub struct TemplateForOrder {
    pub version: i32,
    pub merge_fields: Vec<String>,
}

/// The template's version and merge fields, locked against changes and deletion until the transaction ends.
pub async fn find_for_order(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<TemplateForOrder>, sqlx::Error> {
    sqlx::query_as!(
        TemplateForOrder,
        "SELECT version, merge_fields FROM templates WHERE account_id = $1 AND id = $2 FOR SHARE",
        account_id,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// The version and merge fields of each of `ids` that is a template of the account, locked against changes and
/// deletion until the transaction ends; ids of no such template are left out.
pub async fn find_many_for_order(
    conn: &mut PgConnection,
    account_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, TemplateForOrder)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT id, version, merge_fields FROM templates
         WHERE account_id = $1 AND id = ANY($2) ORDER BY id FOR SHARE",
        account_id,
        ids,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            (
                row.id,
                TemplateForOrder {
                    version: row.version,
                    merge_fields: row.merge_fields,
                },
            )
        })
        .collect())
}

pub async fn list(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    page: PageRequest,
) -> Result<Page<Template>, sqlx::Error> {
    let rows = query_template!(
        "SELECT",
        r#"FROM templates
           WHERE account_id = $1 AND ($2::uuid IS NULL OR id < $2)
           ORDER BY id DESC
           LIMIT $3"#,
        account_id,
        page.starting_after,
        page.limit + 1,
    )
    .fetch_all(db)
    .await?;
    Ok(Page::from_rows(rows, page.limit))
}

/// Writes the new state of a template and counts a new version.
#[tracing::instrument(skip_all, fields(%account_id, template_id = %id))]
pub async fn update(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
    next: &NewTemplate,
) -> Result<Template, sqlx::Error> {
    query_template!(
        r#"UPDATE templates
           SET name = $3, format = $4, content = $5, merge_fields = $6, version = version + 1, updated_at = now()
           WHERE account_id = $1 AND id = $2
           RETURNING"#,
        "",
        account_id,
        id,
        next.name,
        next.format as TemplateFormat,
        next.content.html,
        &next.content.merge_fields,
    )
    .fetch_one(conn)
    .await
}

/// What deleting a template did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    NotFound,
    InUse { orders: i64 },
}

/// Deletes a template that no order refers to.
#[tracing::instrument(skip_all, fields(%account_id, template_id = %id))]
pub async fn delete(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Deletion, sqlx::Error> {
    // Locking the template holds off new orders for it, which lock it FOR SHARE.
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
        // An order committed between the count and the delete: the foreign key keeps the template.
        Err(error) if is_foreign_key_violation(&error) => Ok(Deletion::InUse { orders: 1 }),
        Err(error) => Err(error),
    }
}

fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}
