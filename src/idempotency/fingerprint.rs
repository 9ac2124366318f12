//! Fingerprint: what identifies a request, so that a key reused for another request is caught.

use axum::{
    extract::{FromRequestParts, MatchedPath, RawPathParams},
    http::{Method, request::Parts},
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    domain::input::id::parse_id,
    http::body::{is_csv, parse_json},
    http::error::ApiError,
};

/// SHA-256 of the method, the target (the route and its path parameters) and the body as canonical JSON: object
/// members sorted by name, no insignificant whitespace. Whitespace, member order and the spelling of an id do not
/// change it; any value does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

/// The fingerprint of a keyed request from its head and its whole body, and the body as JSON when it is JSON.
///
/// A JSON body is read as canonical JSON. A `text/csv` body (an order batch) is taken byte for byte. The query
/// string counts when there is one: only an order batch takes one (its settings), and other settings are another
/// request. Any other body is a 415, and a malformed JSON body a 400.
pub async fn of_request(
    parts: &mut Parts,
    body: &[u8],
) -> Result<(Fingerprint, Option<Value>), ApiError> {
    let target = request_target(parts).await;
    if is_csv(&parts.headers) {
        let mut hasher = Sha256::new();
        hasher.update(parts.method.as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(target.as_bytes());
        hasher.update(b"?");
        hasher.update(parts.uri.query().unwrap_or_default().as_bytes());
        hasher.update(b"\ntext/csv\n");
        hasher.update(body);
        return Ok((Fingerprint(hasher.finalize().into()), None));
    }
    let json = parse_json(&parts.headers, body)?;
    let fingerprint = of_json_at(&parts.method, &target, parts.uri.query(), &json);
    Ok((fingerprint, Some(json)))
}

/// The fingerprint [`of_request`] gives a JSON `method` request to `route` (no path parameters, no query string)
/// with `body`: for a request that does not come over HTTP, such as a batch row, which is a `POST /v1/orders`.
pub fn of_json(method: &Method, route: &str, body: &Value) -> Fingerprint {
    of_json_at(method, &target(route, []), None, body)
}

/// The one hash of a JSON request, whether it came over HTTP or not.
fn of_json_at(method: &Method, target: &str, query: Option<&str>, body: &Value) -> Fingerprint {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(target.as_bytes());
    if let Some(query) = query {
        hasher.update(b"?");
        hasher.update(query.as_bytes());
    }
    hasher.update(b"\n");
    let mut canonical = Vec::new();
    write_canonical(body, &mut canonical);
    hasher.update(&canonical);
    Fingerprint(hasher.finalize().into())
}

/// The request's route and path parameters as the fingerprint takes them; the raw path when no route matched.
async fn request_target(parts: &mut Parts) -> String {
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|route| route.as_str().to_owned());
    let parameters = RawPathParams::from_request_parts(parts, &()).await;
    match (route, parameters) {
        (Some(route), Ok(parameters)) => target(&route, &parameters),
        _ => parts.uri.path().to_owned(),
    }
}

/// What a request addresses: its route template (`/v1/orders/{id}`) and each path parameter, an id in its one
/// canonical form. `/v1/orders/019AC…` and `/v1/orders/019ac…` name the same order, so they are the same target;
/// a parameter that is no id stays as it is (such a request is a 404 that runs nothing).
fn target<'a>(route: &str, parameters: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut target = route.to_owned();
    for (name, value) in parameters {
        let value = parse_id(value).map_or_else(|_| value.to_owned(), |id| id.to_string());
        target.push_str(&format!("\n{name}={value}"));
    }
    target
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(members) => {
            let mut members: Vec<_> = members.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (name, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(name.clone()), out);
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Serializing a scalar cannot fail.
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use axum::{
        Router,
        body::{Body, Bytes, to_bytes},
        http::{Request, header},
        routing::post,
    };
    use serde_json::json;
    use tower::ServiceExt;

    use super::*;

    fn of(body: &str) -> Fingerprint {
        of_json(
            &Method::POST,
            "/v1/orders",
            &serde_json::from_str(body).unwrap(),
        )
    }

    #[test]
    fn whitespace_and_member_order_do_not_matter() {
        let a = of(r#"{"a": 1, "b": {"y": [1, 2], "x": "s"}}"#);
        let b = of("{\"b\":{\"x\":\"s\",\"y\":[1,2]},\n  \"a\":1}");
        assert_eq!(a, b);
    }

    #[test]
    fn every_value_method_and_path_matters() {
        let body = json!({"a": [1, 2]});
        let base = of_json(&Method::POST, "/v1/orders", &body);
        assert_ne!(base, of(r#"{"a": [2, 1]}"#));
        assert_ne!(base, of(r#"{"a": [1, 2], "b": null}"#));
        assert_ne!(base, of_json(&Method::PATCH, "/v1/orders", &body));
        assert_ne!(base, of_json(&Method::POST, "/v1/templates", &body));
    }

    #[test]
    fn an_id_is_the_same_target_in_either_case() {
        let upper = target(
            "/v1/orders/{id}",
            [("id", "019AC9F0-7C1E-7A4B-9D0E-2F1C3B4A5D6E")],
        );
        let lower = target(
            "/v1/orders/{id}",
            [("id", "019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e")],
        );
        assert_eq!(upper, lower);
        let other = target(
            "/v1/orders/{id}",
            [("id", "019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6f")],
        );
        assert_ne!(upper, other);
        assert_ne!(
            lower,
            target(
                "/v1/templates/{id}",
                [("id", "019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e")]
            )
        );
    }

    #[test]
    fn escapes_are_read_before_hashing() {
        assert_eq!(of(r#"{"a": "\u0041"}"#), of(r#"{"a": "A"}"#));
    }

    /// A batch row's fingerprint is the one the exactly-once layer reads from a `POST /v1/orders` with its body.
    #[tokio::test]
    async fn a_body_not_sent_over_http_has_the_fingerprint_of_the_post_it_stands_for() {
        let sent = r#"{"template_id": "019AC9F0-7C1E-7A4B-9D0E-2F1C3B4A5D6E",
                       "recipient": {"name": "Anna", "city": "Amsterdam"}, "metadata": {}}"#;
        let layer = Router::new().route(
            "/v1/orders",
            post(|mut parts: Parts, body: Bytes| async move {
                let (fingerprint, _) = of_request(&mut parts, &body).await.unwrap();
                hex::encode(fingerprint.0)
            }),
        );
        let request = Request::post("/v1/orders")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(sent))
            .unwrap();
        let response = layer.oneshot(request).await.unwrap();
        let read = to_bytes(response.into_body(), 1024).await.unwrap();
        let row = json!({"metadata": {}, "recipient": {"city": "Amsterdam", "name": "Anna"},
                         "template_id": "019AC9F0-7C1E-7A4B-9D0E-2F1C3B4A5D6E"});
        assert_eq!(
            read,
            hex::encode(of_json(&Method::POST, "/v1/orders", &row).0)
        );
        assert_ne!(
            read,
            hex::encode(of_json(&Method::POST, "/v1/order_batches", &row).0)
        );
    }
}
