//! API keys: several per account, stored as SHA-256 hashes, each live until it is revoked.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

/// A key as operators see it: never its secret nor its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub account_id: Uuid,
    /// `oik_` and the secret's first 8 hex digits; `None` for keys made before prefixes were kept.
    pub prefix: Option<String>,
    pub created_at: OffsetDateTime,
    /// Up to a minute behind the key's latest use ([`record_use`]).
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// The live key a secret's hash names, as authentication finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveKey {
    pub id: Uuid,
    pub account_id: Uuid,
    /// Whether `last_used_at` is older than the interval given to [`find_live`], or unset: time to record a use.
    pub use_due: bool,
}

/// Adds a key to an account, given as the SHA-256 of its secret and its prefix; fails on the foreign key
/// `api_keys_account_id_fkey` when there is no such account.
#[tracing::instrument(skip_all, fields(%account_id))]
pub async fn insert(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    key_hash: &[u8],
    prefix: &str,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO api_keys (id, account_id, key_hash, prefix) VALUES ($1, $2, $3, $4)",
        id,
        account_id,
        key_hash,
        prefix
    )
    .execute(db)
    .await?;
    Ok(id)
}

/// The unrevoked key with this hash. `use_due` is computed on the database's clock, like [`record_use`].
///
/// The lookup is by hash alone: the account is what it finds (api_keys is a reference table on Citus).
pub async fn find_live(
    db: impl PgExecutor<'_>,
    key_hash: &[u8],
    record_use_every: Duration,
) -> Result<Option<LiveKey>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT id, account_id,
                  coalesce(last_used_at <= now() - make_interval(secs => $2), true) AS "use_due!"
           FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"#,
        key_hash,
        record_use_every.as_secs_f64(),
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| LiveKey {
        id: row.id,
        account_id: row.account_id,
        use_due: row.use_due,
    }))
}

/// Sets `last_used_at` to now unless it was set within `every`: of concurrent requests (on any server) one writes,
/// the others find the new value and change nothing. `false` when nothing was written.
pub async fn record_use(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
    every: Duration,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        r#"UPDATE api_keys SET last_used_at = now()
           WHERE account_id = $1 AND id = $2
             AND (last_used_at IS NULL OR last_used_at <= now() - make_interval(secs => $3))"#,
        account_id,
        id,
        every.as_secs_f64(),
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Every key of an account, revoked ones too, oldest first.
pub async fn list(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
) -> Result<Vec<ApiKeyInfo>, sqlx::Error> {
    sqlx::query_as!(
        ApiKeyInfo,
        r#"SELECT id, account_id, prefix, created_at, last_used_at, revoked_at
           FROM api_keys WHERE account_id = $1 ORDER BY id"#,
        account_id
    )
    .fetch_all(db)
    .await
}

/// Revokes a key from now on; a key revoked before keeps its first `revoked_at`. `None` when there is no such key.
///
/// By id alone, as operators name keys: api_keys is a reference table on Citus, so this reaches one row anywhere.
#[tracing::instrument(skip_all, fields(api_key_id = %id))]
pub async fn revoke(conn: &mut PgConnection, id: Uuid) -> Result<Option<ApiKeyInfo>, sqlx::Error> {
    // Two statements rather than `coalesce(revoked_at, now())`: Citus allows no stable function inside COALESCE in
    // an UPDATE of a distributed or reference table.
    let revoked = sqlx::query_as!(
        ApiKeyInfo,
        r#"UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL
           RETURNING id, account_id, prefix, created_at, last_used_at, revoked_at"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    if revoked.is_some() {
        return Ok(revoked);
    }
    sqlx::query_as!(
        ApiKeyInfo,
        r#"SELECT id, account_id, prefix, created_at, last_used_at, revoked_at FROM api_keys WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}
