//! Idempotency keys: the stored outcome of a keyed request, and the sweeper's batch delete.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor, types::Json};
use uuid::Uuid;

/// The outcome stored for a key: what the endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A key row as a request finds it.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub fingerprint: Vec<u8>,
    /// Older than the retention: never replayed, and taken over by the next request with the key.
    pub expired: bool,
    pub response: StoredResponse,
}

/// The key row of (account, key), if there is one.
pub async fn find(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    key: &str,
    ttl: Duration,
) -> Result<Option<StoredKey>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT fingerprint, response_status, response_headers AS "response_headers: Json<Vec<(String, String)>>",
                  response_body, created_at <= now() - make_interval(secs => $3) AS "expired!"
           FROM idempotency_keys WHERE account_id = $1 AND key = $2"#,
        account_id,
        key,
        ttl.as_secs_f64(),
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| StoredKey {
        fingerprint: row.fingerprint,
        expired: row.expired,
        response: StoredResponse {
            status: u16::try_from(row.response_status).unwrap_or(500),
            headers: row.response_headers.0,
            body: row.response_body,
        },
    }))
}

/// The key rows of many keys of one account, by key; keys without a row are left out.
pub async fn find_many(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    keys: &[String],
    ttl: Duration,
) -> Result<Vec<(String, StoredKey)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT key, fingerprint, response_status,
                  response_headers AS "response_headers: Json<Vec<(String, String)>>",
                  response_body, created_at <= now() - make_interval(secs => $3) AS "expired!"
           FROM idempotency_keys WHERE account_id = $1 AND key = ANY($2)"#,
        account_id,
        keys,
        ttl.as_secs_f64(),
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let stored = StoredKey {
                fingerprint: row.fingerprint,
                expired: row.expired,
                response: StoredResponse {
                    status: u16::try_from(row.response_status).unwrap_or(500),
                    headers: row.response_headers.0,
                    body: row.response_body,
                },
            };
            (row.key, stored)
        })
        .collect())
}

/// An outcome to store for a key, with others.
pub struct NewKey<'a> {
    pub key: &'a str,
    pub fingerprint: &'a [u8],
    pub response: &'a StoredResponse,
}

/// Stores many outcomes in one statement, as [`insert`] does each, taking over expired rows; gives back the keys
/// it stored. A key missing from the answer is held by a live row, perhaps one a concurrent transaction committed
/// while this one waited for it. The rows are written in key order, so that two such statements never deadlock.
#[tracing::instrument(skip_all, fields(%account_id, keys = keys.len()))]
pub async fn insert_many(
    conn: &mut PgConnection,
    account_id: Uuid,
    keys: &[NewKey<'_>],
    ttl: Duration,
) -> Result<Vec<String>, sqlx::Error> {
    let names: Vec<&str> = keys.iter().map(|k| k.key).collect();
    let fingerprints: Vec<&[u8]> = keys.iter().map(|k| k.fingerprint).collect();
    let statuses: Vec<i16> = keys
        .iter()
        .map(|k| i16::try_from(k.response.status).unwrap_or(500))
        .collect();
    let headers: Vec<Json<&Vec<(String, String)>>> =
        keys.iter().map(|k| Json(&k.response.headers)).collect();
    let bodies: Vec<&[u8]> = keys.iter().map(|k| k.response.body.as_slice()).collect();
    sqlx::query_scalar!(
        r#"INSERT INTO idempotency_keys (account_id, key, fingerprint, response_status, response_headers, response_body)
           SELECT $1, key, fingerprint, response_status, response_headers, response_body
           FROM unnest($2::text[], $3::bytea[], $4::int2[], $5::jsonb[], $6::bytea[])
                AS new (key, fingerprint, response_status, response_headers, response_body)
           ORDER BY key
           ON CONFLICT (account_id, key) DO UPDATE
               SET fingerprint = EXCLUDED.fingerprint, created_at = now(), response_status = EXCLUDED.response_status,
                   response_headers = EXCLUDED.response_headers, response_body = EXCLUDED.response_body
               WHERE idempotency_keys.created_at <= now() - make_interval(secs => $7)
           RETURNING key"#,
        account_id,
        &names as _,
        &fingerprints as _,
        &statuses,
        headers as _,
        &bodies as _,
        ttl.as_secs_f64(),
    )
    .fetch_all(conn)
    .await
}

/// Stores the outcome for a key, taking over an expired row; `false` when a live row holds the key.
///
/// Inside the request's transaction this waits for a concurrent transaction that holds the key (bounded by
/// `lock_timeout`) and then sees its row.
#[tracing::instrument(skip_all, fields(%account_id))]
pub async fn insert(
    conn: &mut PgConnection,
    account_id: Uuid,
    key: &str,
    fingerprint: &[u8],
    response: &StoredResponse,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query_scalar!(
        r#"INSERT INTO idempotency_keys (account_id, key, fingerprint, response_status, response_headers, response_body)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (account_id, key) DO UPDATE
               SET fingerprint = EXCLUDED.fingerprint, created_at = now(), response_status = EXCLUDED.response_status,
                   response_headers = EXCLUDED.response_headers, response_body = EXCLUDED.response_body
               WHERE idempotency_keys.created_at <= now() - make_interval(secs => $7)
           RETURNING true AS "stored!""#,
        account_id,
        key,
        fingerprint,
        i16::try_from(response.status).unwrap_or(500),
        Json(&response.headers) as _,
        &response.body,
        ttl.as_secs_f64(),
    )
    .fetch_optional(conn)
    .await?;
    Ok(stored.is_some())
}

/// Deletes at most `limit` expired keys, oldest first, skipping rows a request is taking over right now.
pub async fn delete_expired(
    conn: &mut PgConnection,
    ttl: Duration,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query!(
        r#"DELETE FROM idempotency_keys
           WHERE (account_id, key) IN (
                     SELECT account_id, key FROM idempotency_keys
                     WHERE created_at <= now() - make_interval(secs => $1)
                     ORDER BY created_at
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED)
             AND created_at <= now() - make_interval(secs => $1)"#,
        ttl.as_secs_f64(),
        limit,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// Takes the sweeper's session-level advisory lock on this connection; `false` when another session has it.
pub async fn try_lock_sweeper(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_lock($1) AS "locked!""#,
        SWEEPER_LOCK
    )
    .fetch_one(conn)
    .await
}

pub async fn unlock_sweeper(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT pg_advisory_unlock($1) AS "unlocked!""#,
        SWEEPER_LOCK
    )
    .fetch_one(conn)
    .await
}

/// The advisory lock id of the sweeper ("oi-sweep" in ASCII), for operators who look at `pg_locks`.
pub const SWEEPER_LOCK: i64 = 0x6f69_2d73_7765_6570;
