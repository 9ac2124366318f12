//! The database: the pool, the migrations, and SQL in one module per table family.
//!
//! Functions here speak SQL and return `sqlx::Error`; what an error means to a client is decided at the HTTP edge
//! (`crate::http::error`).

pub mod accounts;
pub mod api_keys;
pub mod idempotency_keys;
pub mod order_batches;
pub mod orders;
pub mod template_versions;
pub mod templates;

use std::{sync::Arc, time::Duration};

use sqlx::{
    Connection, PgPool, Postgres, SqlSafeStr, Transaction,
    migrate::Migrator,
    pool::PoolConnection,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::config::DatabaseConfig;

/// The migrations in `migrations/`, embedded in the binary; `sqlx migrate run` applies the same files.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// A pooled connection idle for this long is checked with a round trip before it is handed out.
const RECHECK_IDLE_AFTER: Duration = Duration::from_secs(10);

/// TCP keepalive on the database's side of every connection, so that PostgreSQL ends the session of a vanished host
/// within about 30 seconds and releases its locks (README, Operating it; sqlx sets no socket options itself).
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
    /// transaction is ended after `idle_in_transaction_session_timeout`. On Citus a transaction begun with
    /// [`Begin`] carries the lock bound to the workers.
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

/// How request transactions begin, found on first use: a bare `BEGIN` on PostgreSQL; on Citus one that also bounds
/// lock waits on the workers, where Citus does not pass `lock_timeout` on (README, Scaling out). One round trip.
#[derive(Debug, Clone, Default)]
pub struct Begin(Arc<OnceCell<&'static str>>);

impl Begin {
    /// Takes a pooled connection and begins a transaction on it.
    pub async fn begin(
        &self,
        pool: &PgPool,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.begin_on(pool.acquire().await?).await
    }

    /// Begins a transaction on a connection already taken from the pool, which the transaction then owns and gives
    /// back to the pool when it ends: for a request that first reads outside the transaction on that connection.
    ///
    /// `Transaction::begin` is the call `Pool::begin_with` makes on the connection it acquires (sqlx 0.9 hides it
    /// from its documentation but exports it, for its own `impl_acquire!`); no public method begins an owned
    /// transaction on a `PoolConnection`.
    pub async fn begin_on(
        &self,
        mut conn: PoolConnection<Postgres>,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let statement = *self
            .0
            .get_or_try_init(|| async {
                let citus = sqlx::query_scalar!(
                    r#"SELECT current_setting('citus.version', true) IS NOT NULL AS "citus!""#
                )
                .fetch_one(&mut *conn)
                .await?;
                Ok::<_, sqlx::Error>(if citus {
                    BEGIN_WITH_LOCK_TIMEOUT_ON_EVERY_NODE
                } else {
                    "BEGIN"
                })
            })
            .await?;
        #[allow(
            clippy::disallowed_methods,
            reason = "the one place a transaction begins"
        )]
        Transaction::begin(conn, Some(statement.into_sql_str())).await
    }
}

/// The statement of [`Begin`] on Citus: `%L` quotes the setting as a literal, such as `'10s'`, or `'0'` for no bound.
const BEGIN_WITH_LOCK_TIMEOUT_ON_EVERY_NODE: &str = "BEGIN; DO $$BEGIN \
    SET LOCAL citus.propagate_set_commands = local; \
    EXECUTE format('SET LOCAL lock_timeout = %L', current_setting('lock_timeout')); \
    END$$";

/// One page of a list.
#[derive(Debug)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub has_more: bool,
}

/// A list request: at most `limit` rows whose keys (an id, a version, a row number) lie in `keys`, of those `filter`
/// lets through, in the list's order or, for the page before a cursor, from the cursor backwards.
///
/// A list's statement is one shape, `WHERE ... AND key BETWEEN $lowest AND $highest ORDER BY key DESC LIMIT $m`
/// (ascending for a list in file order), and its mirror for a page walked `backward` (`ORDER BY key` for a list
/// newest first), with `$m` bound to [`PageRequest::fetch`] and its rows passed to [`PageRequest::page`]. Both ends
/// of the range are always bound, so that the key is an index condition in a generic plan too, where a `$n IS NULL
/// OR key < $n` would be only a filter.
#[derive(Debug, Clone)]
pub struct PageRequest<K, F = ()> {
    pub limit: i64,
    pub keys: KeyRange<K>,
    /// Whether the page is the one before a cursor (`ending_before`): its rows are fetched nearest the cursor first,
    /// against the list's order, and turned around by [`PageRequest::page`].
    pub backward: bool,
    pub filter: F,
}

impl<K: Key, F: Default> Default for PageRequest<K, F> {
    fn default() -> Self {
        Self {
            limit: 0,
            keys: KeyRange::default(),
            backward: false,
            filter: F::default(),
        }
    }
}

impl<K, F> PageRequest<K, F> {
    /// How many rows to fetch: one more than a page, which tells whether more follow.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// The page of rows fetched with [`PageRequest::fetch`]: at most `limit` of them, in the list's order.
    pub fn page<R: Into<T>, T>(&self, rows: Vec<R>) -> Page<T> {
        let limit = usize::try_from(self.limit).unwrap_or(0);
        let has_more = rows.len() > limit;
        let mut data: Vec<T> = rows.into_iter().take(limit).map(Into::into).collect();
        if self.backward {
            data.reverse();
        }
        Page { data, has_more }
    }
}

/// The keys a page may hold, both ends included; empty when `lowest` is above `highest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRange<K> {
    pub lowest: K,
    pub highest: K,
}

impl<K: Key> Default for KeyRange<K> {
    fn default() -> Self {
        Self {
            lowest: K::LOWEST,
            highest: K::HIGHEST,
        }
    }
}

impl<K: Key> KeyRange<K> {
    /// Keeps the keys from `key` on.
    pub fn at_least(&mut self, key: K) {
        self.lowest = self.lowest.max(key);
    }

    /// Keeps the keys below `key`.
    pub fn below(&mut self, key: K) {
        match key.previous() {
            Some(key) => self.highest = self.highest.min(key),
            None => self.clear(),
        }
    }

    /// Keeps the keys above `key`.
    pub fn above(&mut self, key: K) {
        match key.next() {
            Some(key) => self.at_least(key),
            None => self.clear(),
        }
    }

    fn clear(&mut self) {
        (self.lowest, self.highest) = (K::HIGHEST, K::LOWEST);
    }
}

/// The type of a list's key, with its first and last values and its neighbours.
pub trait Key: Copy + Ord {
    const LOWEST: Self;
    const HIGHEST: Self;

    fn next(self) -> Option<Self>;
    fn previous(self) -> Option<Self>;
}

impl Key for i32 {
    const LOWEST: Self = i32::MIN;
    const HIGHEST: Self = i32::MAX;

    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }

    fn previous(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

/// PostgreSQL orders `uuid` byte by byte, as `u128` orders the same bits.
impl Key for Uuid {
    const LOWEST: Self = Uuid::nil();
    const HIGHEST: Self = Uuid::max();

    fn next(self) -> Option<Self> {
        self.as_u128().checked_add(1).map(Uuid::from_u128)
    }

    fn previous(self) -> Option<Self> {
        self.as_u128().checked_sub(1).map(Uuid::from_u128)
    }
}

/// The name of the constraint a statement broke, as the migrations name it; `None` for other errors.
///
/// On Citus it is read from the worker's message and loses its shard-id suffix (README, Scaling out).
pub fn violated_constraint(error: &sqlx::Error) -> Option<&str> {
    let error = error.as_database_error()?;
    let name = match error.constraint() {
        Some(name) => name,
        None => {
            let (_, quoted) = error.message().split_once(" constraint \"")?;
            quoted.strip_suffix('"')?
        }
    };
    Some(without_shard_id(name))
}

/// `name` without a trailing `_` and shard id.
fn without_shard_id(name: &str) -> &str {
    match name.rsplit_once('_') {
        Some((base, shard_id))
            if !shard_id.is_empty() && shard_id.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => name,
    }
}

/// Whether a statement broke a foreign key.
fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}

#[cfg(test)]
mod tests {
    use super::without_shard_id;

    #[test]
    fn a_shard_constraint_name_loses_its_shard_id() {
        assert_eq!(
            without_shard_id("orders_template_version_fkey_102045"),
            "orders_template_version_fkey"
        );
        assert_eq!(
            without_shard_id("orders_metadata_is_metadata"),
            "orders_metadata_is_metadata"
        );
        assert_eq!(without_shard_id("orders_"), "orders_");
    }
}
