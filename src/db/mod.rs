//! The database: the pool, the migrations, and SQL in one module per table family.
//!
//! Functions here speak SQL and return `sqlx::Error`; what an error means to a client is decided at the HTTP edge
//! (`crate::error`).

pub mod accounts;
pub mod api_keys;
pub mod idempotency_keys;
pub mod orders;
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

/// TCP keepalive on the database's side of every connection (PostgreSQL's `tcp_keepalives_idle`,
/// `tcp_keepalives_interval`, `tcp_keepalives_count` and `tcp_user_timeout`): when this service's host vanishes or
/// the network between them breaks, PostgreSQL notices within about 30 seconds, ends the session and rolls its
/// transaction back, releasing its keys and row locks, instead of after the kernel's default of over two hours.
/// sqlx 0.9 sets no socket options on its own side (no keepalive nor user timeout in `PgConnectOptions`), so the
/// database's side is where the bound can be set; it needs a TCP connection (a Unix socket ignores them).
const KEEPALIVE: [(&str, &str); 4] = [
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
    ("tcp_user_timeout", "30000"),
];

/// What a pool's sessions are for, which decides how long their statements may wait.
#[derive(Debug, Clone, Copy)]
pub enum Sessions {
    /// Serving requests: no statement waits longer than `lock_timeout` for a row lock or for a concurrent insert of
    /// the same key (such waits come from concurrent requests, and the client gets a 409 to retry instead of a
    /// hang), none runs longer than the configured `statement_timeout`, and a session left idle inside a
    /// transaction is ended after `idle_in_transaction_session_timeout`.
    Requests { lock_timeout: Duration },
    /// Migrations and command-line tools: they wait for locks as long as it takes (a second instance starting
    /// during a long migration waits for it rather than failing), whatever timeouts the database or role sets.
    Maintenance,
}

/// A pool that connects lazily, so the server starts (and answers `/healthz`) while the database is down.
pub fn pool(config: &DatabaseConfig, sessions: Sessions) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.parse()?;
    let options = options.options(KEEPALIVE).options(match sessions {
        Sessions::Requests { lock_timeout } => [
            ("lock_timeout", milliseconds(lock_timeout)),
            ("statement_timeout", milliseconds(config.statement_timeout)),
            (
                "idle_in_transaction_session_timeout",
                milliseconds(config.idle_in_transaction_timeout),
            ),
        ],
        Sessions::Maintenance => [
            ("lock_timeout", "0".to_owned()),
            ("statement_timeout", "0".to_owned()),
            ("idle_in_transaction_session_timeout", "0".to_owned()),
        ],
    });
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

/// A duration as a PostgreSQL setting in milliseconds; at least 1, since 0 turns a timeout off.
fn milliseconds(duration: Duration) -> String {
    format!("{}ms", duration.as_millis().max(1))
}

/// Applies the migrations on a session of their own, which waits for locks as long as it takes
/// ([`Sessions::Maintenance`]), not on the request pool with its timeouts.
pub async fn migrate(config: &DatabaseConfig) -> Result<(), sqlx::migrate::MigrateError> {
    let pool = pool(config, Sessions::Maintenance)?;
    let migrated = MIGRATOR.run(&pool).await;
    pool.close().await;
    migrated
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
