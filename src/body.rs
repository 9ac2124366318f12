//! The request body: read whole within the configured limit, and parsed as JSON, for the extractors and for the
//! layers that need it before the handler runs.

use axum::{
    body::Bytes,
    extract::Request,
    http::{HeaderMap, header},
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use crate::{error::ApiError, state::AppState};

/// A JSON body that a layer already parsed, handed on to the body extractor so that it is parsed once.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Value);

/// The largest body of a route that takes more than `REQUEST_BODY_LIMIT_BYTES` (order batches), set as a request
/// extension by a layer around the route, so that every reader of the body applies it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The whole body, within the route's [`BodyLimit`] or else `REQUEST_BODY_LIMIT_BYTES`: 413 as soon as it is
/// longer, without reading the rest.
pub async fn read_body(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = request
        .extensions()
        .get::<BodyLimit>()
        .map_or(state.config.request_body_limit_bytes, |limit| limit.0);
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(ApiError::PayloadTooLarge { limit }),
        Err(error) => Err(ApiError::UnreadableBody(error.to_string())),
    }
}

/// The body as JSON: 415 unless the content type is JSON, 400 unless it parses.
pub fn parse_json(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType(
            "Send the body as JSON with `Content-Type: application/json`.".to_owned(),
        ));
    }
    if body.is_empty() {
        return Err(ApiError::MalformedJson(
            "The request body is empty; send a JSON object.".to_owned(),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::MalformedJson(format!("The body is not valid JSON: {e}.")))
}

/// Whether the body is sent as JSON (`application/json` or `application/*+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    let essence = media_type(headers);
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether the body is sent as `text/csv` (RFC 4180), the other form of an order batch.
pub fn is_csv(headers: &HeaderMap) -> bool {
    media_type(headers) == "text/csv"
}

/// The media type of the body without its parameters, in lower case; empty without a `Content-Type`.
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|content_type| content_type.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/merge-patch+json".parse().unwrap(),
        );
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&headers));
    }
}
