//! Replays: the response an endpoint gave, captured for its key, and given back to every retry.

use axum::{
    body::Body,
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::Response,
};

use crate::{db::idempotency_keys::StoredResponse, http::error::ApiError};

/// Set on every replayed response.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Reads the endpoint's whole response so that it can be stored, and gives back the same response to send.
pub async fn capture(response: Response) -> Result<(StoredResponse, Response), ApiError> {
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(ApiError::internal)?;
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| *name != header::CONTENT_LENGTH)
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let stored = StoredResponse {
        status: parts.status.as_u16(),
        headers,
        body: body.to_vec(),
    };
    Ok((stored, Response::from_parts(parts, Body::from(body))))
}

/// The stored response, byte for byte, marked as a replay.
pub fn replay(stored: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() =
        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.append(name, value);
        }
    }
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}
