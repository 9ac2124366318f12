//! Accounts and their API keys.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// Creates an account with one API key, given as its SHA-256 hash.
#[tracing::instrument(skip_all, fields(account_id))]
pub async fn insert_with_key(
    conn: &mut PgConnection,
    name: &str,
    key_hash: &[u8],
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    tracing::Span::current().record("account_id", tracing::field::display(id));
    sqlx::query!("INSERT INTO accounts (id, name) VALUES ($1, $2)", id, name)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "INSERT INTO api_keys (id, account_id, key_hash) VALUES ($1, $2, $3)",
        Uuid::now_v7(),
        id,
        key_hash
    )
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// The account an API key belongs to.
pub async fn find_by_key_hash(
    db: impl PgExecutor<'_>,
    key_hash: &[u8],
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT account_id FROM api_keys WHERE key_hash = $1",
        key_hash
    )
    .fetch_optional(db)
    .await
}
