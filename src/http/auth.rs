//! Bearer authentication: API keys, and the layer that turns `Authorization: Bearer <api_key>` into an Account.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{HeaderMap, header, request::Parts},
    middleware::Next,
    response::Response,
};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db,
    http::error::{ApiError, Credentials, Rejection},
    metrics::Metrics,
};

/// What every API key starts with, so that a leaked one is easy to recognise.
const KEY_PREFIX: &str = "oik_";
/// Random bytes in a key: 256 bits.
const KEY_BYTES: usize = 32;
/// Characters of a key kept in the clear to recognise it by: `oik_` and 8 hex digits, 32 of its 256 bits.
const PREFIX_LENGTH: usize = KEY_PREFIX.len() + 8;
/// A key's `last_used_at` is written at most this often, so that authentication writes no row per request.
pub const RECORD_USE_EVERY: Duration = Duration::from_secs(60);

/// A new API key; the secret is shown once and only its hash is stored.
pub struct ApiKey {
    pub secret: String,
    pub hash: [u8; 32],
}

impl ApiKey {
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes)?;
        let secret = format!("{KEY_PREFIX}{}", hex::encode(bytes));
        let hash = hash(&secret);
        Ok(Self { secret, hash })
    }

    /// The part of the key that may be shown and stored in the clear: `oik_` and its first 8 hex digits.
    pub fn prefix(&self) -> &str {
        &self.secret[..PREFIX_LENGTH]
    }
}

/// The SHA-256 of a key, as stored.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The calling account, known once the request is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
}

/// Most live keys one server keeps in [`LiveKeys`]; past it the least used go first.
const LIVE_KEYS_CAPACITY: u64 = 100_000;

/// The live API keys this server checked in the last `API_KEY_CACHE_SECONDS`, by the SHA-256 of their secret, so
/// that a request with one needs no round trip; a revocation is seen within that long (README, Command line).
#[derive(Clone)]
pub struct LiveKeys(Option<moka::future::Cache<[u8; 32], Uuid>>);

impl LiveKeys {
    /// Keeps each live key for `ttl` after it was checked; nothing when `ttl` is zero.
    pub fn new(ttl: Duration) -> Self {
        Self((!ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .max_capacity(LIVE_KEYS_CAPACITY)
                .time_to_live(ttl)
                .build()
        }))
    }
}

/// Rejects requests without a live API key (401: unknown or revoked) and makes the [`Account`] available to the
/// handler. A key is checked against the database at most once per `API_KEY_CACHE_SECONDS` on each server
/// ([`LiveKeys`]), so a revoked key is refused within that long. A check records the key's use when its
/// `last_used_at` is older than [`RECORD_USE_EVERY`].
pub async fn require_account(
    State(live_keys): State<LiveKeys>,
    State(pool): State<PgPool>,
    State(metrics): State<Metrics>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let secret = bearer_token(request.headers())?;
    if !is_well_formed(secret) {
        return Err(ApiError::Unauthorized(Credentials::Invalid));
    }
    let key_hash = hash(secret);
    let check = || check(&pool, &metrics, &key_hash);
    let id = match &live_keys.0 {
        None => check().await?,
        Some(live_keys) => match live_keys.try_get_with(key_hash, check()).await {
            Ok(id) => id,
            // A failed check is shared by the requests that waited on it, and only a request holding the last share
            // can take the error itself; the others check alone, so that each answers with its own error.
            Err(failure) => match Arc::try_unwrap(failure) {
                Ok(failure) => return Err(failure),
                Err(_) => check().await?,
            },
        },
    };
    tracing::Span::current().record("account_id", tracing::field::display(id));
    request.extensions_mut().insert(Account { id });
    Ok(next.run(request).await)
}

/// Looks a key up in the database and records its use when one is due; its account when it is live.
async fn check(pool: &PgPool, metrics: &Metrics, key_hash: &[u8; 32]) -> Result<Uuid, ApiError> {
    // The connection goes back to the pool before the request goes on.
    let mut conn = metrics.waiting_for(pool.acquire()).await?;
    let key = db::api_keys::find_live(&mut *conn, key_hash, RECORD_USE_EVERY)
        .await?
        .ok_or(ApiError::Unauthorized(Credentials::Invalid))?;
    if key.use_due {
        db::api_keys::record_use(&mut *conn, key.account_id, key.id, RECORD_USE_EVERY).await?;
    }
    Ok(key.account_id)
}

fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(Credentials::Missing))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized(Credentials::Invalid))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(ApiError::Unauthorized(Credentials::Missing)),
    }
}

fn is_well_formed(secret: &str) -> bool {
    secret
        .strip_prefix(KEY_PREFIX)
        .is_some_and(|hex| hex.len() == KEY_BYTES * 2 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl<S: Send + Sync> FromRequestParts<S> for Account {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Account>()
            .copied()
            .ok_or_else(|| Rejection(ApiError::internal("route has no authentication layer")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_well_formed() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert_ne!(a.secret, b.secret);
        assert!(is_well_formed(&a.secret));
        assert_eq!(a.hash, hash(&a.secret));
        assert_eq!(a.prefix().len(), 12);
        assert!(a.secret.starts_with(a.prefix()));
    }

    #[test]
    fn only_the_bearer_scheme_is_accepted() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(bearer_token(&headers).is_err());
        headers.insert(header::AUTHORIZATION, "bearer oik_x".parse().unwrap());
        assert_eq!(bearer_token(&headers).unwrap(), "oik_x");
    }
}
