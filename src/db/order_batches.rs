//! Order batches and the result of each of their rows, always scoped by account.

use sqlx::{PgConnection, PgExecutor, types::Json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Page, PageRequest};
use crate::domain::batch::{BatchCounts, OrderBatch, RowResult};

struct BatchRow {
    id: Uuid,
    created_at: OffsetDateTime,
    completed_at: Option<OffsetDateTime>,
    row_count: i32,
    created_count: i32,
    replayed_count: i32,
    failed_count: i32,
}

impl From<BatchRow> for OrderBatch {
    fn from(row: BatchRow) -> Self {
        Self {
            id: row.id,
            created_at: row.created_at,
            completed_at: row.completed_at,
            counts: BatchCounts {
                rows: row.row_count,
                created: row.created_count,
                replayed: row.replayed_count,
                failed: row.failed_count,
            },
        }
    }
}

/// `sqlx::query_as!` into a [`BatchRow`], with the batch's columns between `$before` and `$after`.
macro_rules! query_batch {
    ($before:literal, $after:literal, $($arguments:tt)*) => {
        sqlx::query_as!(
            BatchRow,
            $before
                + " id, created_at, completed_at, row_count, created_count, replayed_count, failed_count "
                + $after,
            $($arguments)*
        )
    };
}

/// Starts a batch of `rows` rows: a new one, or, for a batch request sent again with the same `Idempotency-Key`
/// after it stopped in the middle, that unfinished batch, with its row results cleared (the rows it took come
/// back as replays).
#[tracing::instrument(skip_all, fields(%account_id))]
pub async fn start(
    conn: &mut PgConnection,
    account_id: Uuid,
    idempotency_key: Option<&str>,
    rows: i32,
) -> Result<OrderBatch, sqlx::Error> {
    let unfinished = sqlx::query_scalar!(
        "SELECT id FROM order_batches
         WHERE account_id = $1 AND idempotency_key = $2 AND completed_at IS NULL FOR UPDATE",
        account_id,
        idempotency_key,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let row = match unfinished {
        Some(id) => {
            sqlx::query!(
                "DELETE FROM order_batch_rows WHERE account_id = $1 AND batch_id = $2",
                account_id,
                id,
            )
            .execute(&mut *conn)
            .await?;
            query_batch!(
                "UPDATE order_batches SET row_count = $3, created_count = 0, replayed_count = 0, failed_count = 0
                 WHERE account_id = $1 AND id = $2 RETURNING",
                "",
                account_id,
                id,
                rows,
            )
            .fetch_one(conn)
            .await?
        }
        None => {
            query_batch!(
                "INSERT INTO order_batches (account_id, id, idempotency_key, row_count) VALUES ($1, $2, $3, $4)
                 RETURNING",
                "",
                account_id,
                Uuid::now_v7(),
                idempotency_key,
                rows,
            )
            .fetch_one(conn)
            .await?
        }
    };
    Ok(row.into())
}

/// Stores the results of some rows of a batch and adds them to its counts.
#[tracing::instrument(skip_all, fields(%account_id, %batch_id, rows = results.len()))]
pub async fn insert_rows(
    conn: &mut PgConnection,
    account_id: Uuid,
    batch_id: Uuid,
    results: &[RowResult],
) -> Result<(), sqlx::Error> {
    let rows: Vec<i32> = results.iter().map(|r| r.row).collect();
    let lines: Vec<Option<i32>> = results.iter().map(|r| r.line).collect();
    let keys: Vec<Option<&str>> = results
        .iter()
        .map(|r| r.idempotency_key.as_deref())
        .collect();
    let statuses: Vec<i16> = results
        .iter()
        .map(|r| i16::try_from(r.status).unwrap_or(500))
        .collect();
    let order_ids: Vec<Option<Uuid>> = results.iter().map(|r| r.order_id).collect();
    let replayed: Vec<bool> = results.iter().map(|r| r.replayed).collect();
    let errors: Vec<Option<Json<&serde_json::Value>>> =
        results.iter().map(|r| r.error.as_ref().map(Json)).collect();
    sqlx::query!(
        r#"INSERT INTO order_batch_rows (account_id, batch_id, row_number, idempotency_key, status, order_id, replayed, error, line)
           SELECT $1, $2, row_number, idempotency_key, status, order_id, replayed, error, line
           FROM unnest($3::int4[], $4::text[], $5::int2[], $6::uuid[], $7::bool[], $8::jsonb[], $9::int4[])
                AS new (row_number, idempotency_key, status, order_id, replayed, error, line)"#,
        account_id,
        batch_id,
        &rows,
        &keys as _,
        &statuses,
        &order_ids as _,
        &replayed,
        errors as _,
        &lines as _,
    )
    .execute(&mut *conn)
    .await?;
    let counts = BatchCounts::of(results);
    sqlx::query!(
        "UPDATE order_batches
         SET created_count = created_count + $3, replayed_count = replayed_count + $4, failed_count = failed_count + $5
         WHERE account_id = $1 AND id = $2",
        account_id,
        batch_id,
        counts.created,
        counts.replayed,
        counts.failed,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the batch complete: every row has its result.
pub async fn complete(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<OrderBatch, sqlx::Error> {
    let row = query_batch!(
        "UPDATE order_batches SET completed_at = now() WHERE account_id = $1 AND id = $2 RETURNING",
        "",
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
) -> Result<Option<OrderBatch>, sqlx::Error> {
    let row = query_batch!(
        "SELECT",
        "FROM order_batches WHERE account_id = $1 AND id = $2",
        account_id,
        id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(OrderBatch::from))
}

/// Batches, newest first.
pub async fn list(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    page: &PageRequest<Uuid>,
) -> Result<Page<OrderBatch>, sqlx::Error> {
    let (keys, fetch) = (page.keys, page.fetch());
    let rows = if page.backward {
        query_batch!(
            "SELECT",
            "FROM order_batches WHERE account_id = $1 AND id BETWEEN $2 AND $3 ORDER BY id LIMIT $4",
            account_id,
            keys.lowest,
            keys.highest,
            fetch,
        )
        .fetch_all(db)
        .await?
    } else {
        query_batch!(
            "SELECT",
            "FROM order_batches WHERE account_id = $1 AND id BETWEEN $2 AND $3 ORDER BY id DESC LIMIT $4",
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

/// A row result as it is stored.
struct RowResultRow {
    row_number: i32,
    line: Option<i32>,
    idempotency_key: Option<String>,
    status: i16,
    order_id: Option<Uuid>,
    replayed: bool,
    error: Option<Json<serde_json::Value>>,
}

impl From<RowResultRow> for RowResult {
    fn from(row: RowResultRow) -> Self {
        Self {
            row: row.row_number,
            line: row.line,
            idempotency_key: row.idempotency_key,
            status: u16::try_from(row.status).unwrap_or(500),
            order_id: row.order_id,
            replayed: row.replayed,
            error: row.error.map(|e| e.0),
        }
    }
}

/// `sqlx::query_as!` into [`RowResultRow`]s of one batch (`$2`), of one status (`$3`) or any, whose row numbers lie
/// between `$4` and `$5`, ordered and limited by `$order`.
macro_rules! query_row_result {
    ($order:literal, $($arguments:tt)*) => {
        sqlx::query_as!(
            RowResultRow,
            r#"SELECT row_number, line, idempotency_key, status, order_id, replayed,
                      error AS "error: Json<serde_json::Value>"
               FROM order_batch_rows
               WHERE account_id = $1 AND batch_id = $2 AND ($3::int2 IS NULL OR status = $3)
                 AND row_number BETWEEN $4 AND $5 "#
                + $order,
            $($arguments)*
        )
    };
}

/// A page of a batch's row results in file order, optionally of one status only.
pub async fn rows(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    batch_id: Uuid,
    page: &PageRequest<i32, Option<u16>>,
) -> Result<Page<RowResult>, sqlx::Error> {
    let status = page.filter.and_then(|s| i16::try_from(s).ok());
    let (keys, fetch) = (page.keys, page.fetch());
    let rows = if page.backward {
        query_row_result!(
            "ORDER BY row_number DESC LIMIT $6",
            account_id,
            batch_id,
            status,
            keys.lowest,
            keys.highest,
            fetch,
        )
        .fetch_all(db)
        .await?
    } else {
        query_row_result!(
            "ORDER BY row_number LIMIT $6",
            account_id,
            batch_id,
            status,
            keys.lowest,
            keys.highest,
            fetch,
        )
        .fetch_all(db)
        .await?
    };
    Ok(page.page(rows))
}
