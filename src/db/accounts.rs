//! Accounts: the owners of every other row.

use sqlx::{PgConnection, PgExecutor};
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
