//! Accounts: the owners of every other row.

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use super::api_keys;

/// Creates an account with one API key, given as the SHA-256 of its secret and its prefix.
#[tracing::instrument(skip_all, fields(account_id))]
pub async fn insert_with_key(
    conn: &mut PgConnection,
    name: &str,
    key_hash: &[u8],
    key_prefix: &str,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    tracing::Span::current().record("account_id", tracing::field::display(id));
    sqlx::query!("INSERT INTO accounts (id, name) VALUES ($1, $2)", id, name)
        .execute(&mut *conn)
        .await?;
    api_keys::insert(&mut *conn, id, key_hash, key_prefix).await?;
    Ok(id)
}

/// Whether the account exists.
pub async fn exists(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1) AS "exists!""#,
        id
    )
    .fetch_one(db)
    .await
}

/// An account as operators see it: no secret, and how many of its API keys are live.
#[derive(Debug)]
pub struct AccountInfo {
    pub id: Uuid,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub live_api_keys: i64,
}

/// Every account, oldest first.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<AccountInfo>, sqlx::Error> {
    sqlx::query_as!(
        AccountInfo,
        r#"SELECT a.id, a.name, a.created_at,
                  (SELECT count(*) FROM api_keys k WHERE k.account_id = a.id AND k.revoked_at IS NULL)
                    AS "live_api_keys!"
           FROM accounts a ORDER BY a.id"#
    )
    .fetch_all(db)
    .await
}
