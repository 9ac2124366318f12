//! The request body: read whole within the configured limit, and parsed as JSON, for the extractors and for the
//! layers that need it before the handler runs.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{HeaderMap, header},
};
use serde_json::Value;

use crate::{error::ApiError, state::AppState};

/// A JSON body that a layer already parsed, handed on to the body extractor so that it is parsed once.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Value);

/// The whole body, within the configured limit.
pub async fn read_body(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: state.config.request_body_limit_bytes,
                }
            } else {
                ApiError::UnreadableBody(rejection.body_text())
            }
        })
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

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
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
