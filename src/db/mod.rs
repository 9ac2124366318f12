//! The database: the pool, the migrations, and SQL in one module per table family.

pub mod accounts;
pub mod idempotency_keys;
pub mod orders;
pub mod templates;
pub mod tx;

use std::time::Duration;

use sqlx::{
    Connection, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{config::DatabaseConfig, error::ApiError};

/// The migrations in `migrations/`, embedded in the binary; `sqlx migrate run` applies the same files.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// A pooled connection idle for this long is checked with a round trip before it is handed out.
const RECHECK_IDLE_AFTER: Duration = Duration::from_secs(10);

/// A pool that connects lazily, so the server starts (and answers `/healthz`) while the database is down.
///
/// With `lock_timeout`, no statement waits longer than that for a row lock or for a concurrent insert of the same
/// key: such waits come from concurrent requests, and the client gets a 409 to retry instead of a hang.
pub fn pool(
    config: &DatabaseConfig,
    lock_timeout: Option<Duration>,
) -> Result<PgPool, sqlx::Error> {
    let mut options: PgConnectOptions = config.url.parse()?;
    if let Some(timeout) = lock_timeout {
        options = options.options([("lock_timeout", format!("{}ms", timeout.as_millis().max(1)))]);
    }
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        // sqlx checks every connection on its way back to the pool with a round trip; checking it again on the
        // way out doubles that on every query. Only a connection that sat idle for a while is checked again.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= RECHECK_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options))
}

/// True when the error says the database cannot be reached, rather than that a statement failed.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception; 57P01-57P03: shutdown, crash, not accepting connections yet.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// True when a statement gave up waiting for a lock (`lock_timeout`): another request held the row too long.
pub fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "55P03")
}

/// The client error a violated CHECK constraint stands for; the database is the last line of validation.
pub fn constraint_violation(error: &sqlx::Error) -> Option<ApiError> {
    let constraint = error.as_database_error()?.constraint()?;
    let (field, message) = match constraint {
        "templates_name_length" => ("name", "must be 1 to 200 characters"),
        "templates_format_known" => ("format", "is not a known format"),
        "templates_content_size" => ("content", "must be 1 to 524288 bytes"),
        "orders_recipient_is_address" => ("recipient", "is not a valid address"),
        "orders_sender_is_address" => ("sender", "is not a valid address"),
        "orders_merge_variables_is_string_map" => ("merge_variables", "must map names to strings"),
        "orders_send_date_not_before_creation" => ("send_date", "must not be in the past"),
        _ => return None,
    };
    Some(ApiError::invalid_field(field, message))
}

/// One page of a list, newest first.
#[derive(Debug)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub has_more: bool,
}

impl<T> Page<T> {
    /// Splits `rows`, fetched with `limit + 1`, into a page of at most `limit`.
    pub fn from_rows(mut rows: Vec<T>, limit: i64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        Self {
            data: rows,
            has_more,
        }
    }
}

/// A list request: at most `limit` rows older than the `starting_after` id.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: i64,
    pub starting_after: Option<uuid::Uuid>,
}
