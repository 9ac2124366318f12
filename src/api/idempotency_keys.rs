//! `/v1/idempotency_keys`: what the server stored for a key, so that a client that lost an answer can ask instead
//! of retrying blind.

use axum::{
    Json,
    extract::{Path, State, rejection::PathRejection},
};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::problems;
use crate::{
    db, http::auth::Account, http::error::ApiError, idempotency::key::IdempotencyKey,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(inspect))
}

/// A live idempotency key: the request it was used for and the outcome stored with it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "key": "customer-4711-2026-11-28",
    "created_at": "2026-11-28T12:00:00.000000Z",
    "expires_at": "2026-11-29T12:00:00.000000Z",
    "method": "POST",
    "path": "/v1/orders",
    "status": 201,
    "resource": "/v1/orders/019ac9f1-1a2b-7c3d-8e4f-5a6b7c8d9e0f"
}))]
pub struct IdempotencyKeyRecord {
    /// The key, as the server read it (a quoted key unquoted).
    pub key: String,
    /// When the outcome was stored.
    #[serde(with = "crate::domain::timestamp")]
    pub created_at: OffsetDateTime,
    /// When the key stops being replayed; after it, a request with the key runs as new.
    #[serde(with = "crate::domain::timestamp")]
    pub expires_at: OffsetDateTime,
    /// `POST` or `PATCH`; null for keys stored before the request was kept with them.
    #[schema(required = true)]
    pub method: Option<String>,
    /// The request's path, with ids; null like `method`.
    #[schema(required = true)]
    pub path: Option<String>,
    /// The status of the stored answer, which every retry with the key gets again.
    pub status: u16,
    /// The `Location` of the stored answer: the resource the request created; null when it created none.
    #[schema(required = true)]
    pub resource: Option<String>,
}

/// Inspect an idempotency key
///
/// What the server stored for a key of your account: when, until when, for which request, and with which answer.
/// The key goes in the path URL-encoded (`%20` for a space, `%2F` for `/`). It is a GET: it never creates, extends
/// or changes a key. Unknown and expired keys, and keys of other accounts, are not found.
#[utoipa::path(
    get,
    path = "/v1/idempotency_keys/{key}",
    operation_id = "getIdempotencyKey",
    tag = "idempotency_keys",
    params(("key" = String, Path, description = "The Idempotency-Key, URL-encoded.")),
    responses(
        (status = 200, description = "The key and what was stored with it.", body = IdempotencyKeyRecord),
        (status = 401, response = problems::Unauthorized),
        (status = 404, response = problems::NotFound),
        (status = 500, response = problems::InternalError),
        (status = 503, response = problems::ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn inspect(
    State(state): State<AppState>,
    account: Account,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<IdempotencyKeyRecord>, ApiError> {
    // A path that does not decode to a valid key names no key.
    let key = key
        .ok()
        .and_then(|Path(key)| IdempotencyKey::parse(key.as_bytes()).ok())
        .ok_or(ApiError::IdempotencyKeyNotFound)?;
    let record = db::idempotency_keys::inspect(&state.pool, account.id, key.as_str())
        .await?
        .ok_or(ApiError::IdempotencyKeyNotFound)?;
    let resource = record
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("location"))
        .map(|(_, location)| location.clone());
    Ok(Json(IdempotencyKeyRecord {
        key: key.as_str().to_owned(),
        created_at: record.created_at,
        expires_at: record.expires_at,
        method: record.method,
        path: record.path,
        status: record.status,
        resource,
    }))
}
