//! Idempotency keys: the stored outcome of a keyed request, its inspection, and the sweeper's batch delete.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor, types::Json};
use time::OffsetDateTime;
use uuid::Uuid;

/// The request a key was used for, stored with its outcome so that the key can be inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine<'a> {
    /// `POST` or `PATCH`.
    pub method: &'a str,
    /// The path, with ids, without the query.
    pub path: &'a str,
}

/// A live key as its account may inspect it; never the fingerprint nor the stored body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub created_at: OffsetDateTime,
    /// When the key stops being replayed.
    pub expires_at: OffsetDateTime,
    /// `None` for rows stored before the request was kept with its key.
    pub method: Option<String>,
    pub path: Option<String>,
    /// The stored response's status.
    pub status: u16,
    /// The stored response's headers (`Content-Type`, `Location`).
    pub headers: Vec<(String, String)>,
}

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
    /// Past its `expires_at`: never replayed, and taken over by the next request with the key.
    pub expired: bool,
    pub response: StoredResponse,
}

/// The key row of (account, key), if there is one; whether it expired is read from the row's own `expires_at`.
pub async fn find(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    key: &str,
) -> Result<Option<StoredKey>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT fingerprint, response_status, response_headers AS "response_headers: Json<Vec<(String, String)>>",
                  response_body, expires_at <= now() AS "expired!"
           FROM idempotency_keys WHERE account_id = $1 AND key = $2"#,
        account_id,
        key,
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
) -> Result<Vec<(String, StoredKey)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT key, fingerprint, response_status,
                  response_headers AS "response_headers: Json<Vec<(String, String)>>",
                  response_body, expires_at <= now() AS "expired!"
           FROM idempotency_keys WHERE account_id = $1 AND key = ANY($2)"#,
        account_id,
        keys,
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

/// Stores many outcomes in one statement, as [`insert`] does each (replayed for `ttl` from now), taking over
/// rows past their `expires_at`; gives back the keys
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
        r#"INSERT INTO idempotency_keys
               (account_id, key, fingerprint, response_status, response_headers, response_body, expires_at)
           SELECT $1, key, fingerprint, response_status, response_headers, response_body,
                  now() + make_interval(secs => $7)
           FROM unnest($2::text[], $3::bytea[], $4::int2[], $5::jsonb[], $6::bytea[])
                AS new (key, fingerprint, response_status, response_headers, response_body)
           ORDER BY key
           ON CONFLICT (account_id, key) DO UPDATE
               SET fingerprint = EXCLUDED.fingerprint, created_at = EXCLUDED.created_at,
                   expires_at = EXCLUDED.expires_at, response_status = EXCLUDED.response_status,
                   response_headers = EXCLUDED.response_headers, response_body = EXCLUDED.response_body
               WHERE idempotency_keys.expires_at <= EXCLUDED.created_at
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

/// Stores the outcome for a key, to be replayed for `ttl` from now (its `expires_at`), taking over a row past its
/// own `expires_at`; `false` when a live row holds the key.
///
/// Inside the request's transaction this waits for a concurrent transaction that holds the key (bounded by
/// `lock_timeout`) and then sees its row. The new row's `created_at` (its default, `now()`) is the clock of the
/// takeover: Citus evaluates `now()` once on the coordinator for the inserted row, and allows only immutable
/// functions in the `DO UPDATE` clauses it sends to the shard, so the expiry is compared with it, not with `now()`.
#[tracing::instrument(skip_all, fields(%account_id))]
pub async fn insert(
    conn: &mut PgConnection,
    account_id: Uuid,
    key: &str,
    request: RequestLine<'_>,
    fingerprint: &[u8],
    response: &StoredResponse,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query_scalar!(
        r#"INSERT INTO idempotency_keys
               (account_id, key, fingerprint, response_status, response_headers, response_body, expires_at,
                request_method, request_path)
           VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7), $8, $9)
           ON CONFLICT (account_id, key) DO UPDATE
               SET fingerprint = EXCLUDED.fingerprint, created_at = EXCLUDED.created_at,
                   expires_at = EXCLUDED.expires_at, response_status = EXCLUDED.response_status,
                   response_headers = EXCLUDED.response_headers, response_body = EXCLUDED.response_body,
                   request_method = EXCLUDED.request_method, request_path = EXCLUDED.request_path
               WHERE idempotency_keys.expires_at <= EXCLUDED.created_at
           RETURNING true AS "stored!""#,
        account_id,
        key,
        fingerprint,
        i16::try_from(response.status).unwrap_or(500),
        Json(&response.headers) as _,
        &response.body,
        ttl.as_secs_f64(),
        request.method,
        request.path,
    )
    .fetch_optional(conn)
    .await?;
    Ok(stored.is_some())
}

/// The live key row of (account, key) for inspection; `None` when there is none or it expired. Only reads.
pub async fn inspect(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    key: &str,
) -> Result<Option<KeyRecord>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT created_at, expires_at, request_method, request_path, response_status,
                  response_headers AS "response_headers: Json<Vec<(String, String)>>"
           FROM idempotency_keys
           WHERE account_id = $1 AND key = $2 AND expires_at > now()"#,
        account_id,
        key,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| KeyRecord {
        created_at: row.created_at,
        expires_at: row.expires_at,
        method: row.request_method,
        path: row.request_path,
        status: u16::try_from(row.response_status).unwrap_or(500),
        headers: row.response_headers.0,
    }))
}

/// Deletes at most `limit` keys past their `expires_at`, those that expired first first; a row a request is taking
/// over right now is waited for, then kept, its `expires_at` being new. On Citus it spans every shard.
pub async fn delete_expired(conn: &mut PgConnection, limit: i64) -> Result<u64, sqlx::Error> {
    let result = sqlx::query!(
        r#"DELETE FROM idempotency_keys
           WHERE (account_id, key) IN (
                     SELECT account_id, key FROM idempotency_keys
                     WHERE expires_at <= now()
                     ORDER BY expires_at
                     LIMIT $1)
             AND expires_at <= now()"#,
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
