//! The database: the pool, the migrations, and SQL in one module per table family.
//!
//! Functions here speak SQL and return `sqlx::Error`; what an error means to a client is decided at the HTTP edge
//! (`crate::error`).

pub mod accounts;
pub mod idempotency_keys;
pub mod order_batches;
pub mod orders;
pub mod template_versions;
pub mod templates;

use std::time::Duration;

use sqlx::{
    Connection, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::config::DatabaseConfig;

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

/// Whether a statement broke a foreign key.
fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}
