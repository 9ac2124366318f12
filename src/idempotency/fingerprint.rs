//! Fingerprint: what identifies a request, so that a key reused for another request is caught.

use axum::http::{Method, request::Parts};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    domain::id::parse_id,
    http::body::{is_csv, parse_json},
    http::error::ApiError,
};

/// SHA-256 of the method, the target (see [`target`]) and the body as canonical JSON: object members sorted by
/// name, no insignificant whitespace. Whitespace, member order and the spelling of an id do not change it; any
/// value does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(method: &Method, target: &str, body: &Value) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(method.as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(target.as_bytes());
        hasher.update(b"\n");
        let mut canonical = Vec::new();
        write_canonical(body, &mut canonical);
        hasher.update(&canonical);
        Self(hasher.finalize().into())
    }
}

/// The fingerprint of a keyed request from its head, its [`target`] and its whole body, and the body as JSON when
/// it is JSON.
///
/// A JSON body is read as canonical JSON ([`Fingerprint::of`]). A `text/csv` body (an order batch) is taken byte
/// for byte. The query string counts when there is one: only an order batch takes one (its settings), and other
/// settings are another request. Any other body is a 415, and a malformed JSON body a 400.
pub fn of_request(
    parts: &Parts,
    target: &str,
    body: &[u8],
) -> Result<(Fingerprint, Option<Value>), ApiError> {
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
    let target = match parts.uri.query() {
        Some(query) => format!("{target}?{query}"),
        None => target.to_owned(),
    };
    Ok((Fingerprint::of(&parts.method, &target, &json), Some(json)))
}

/// What a request addresses: its route template (`/v1/orders/{id}`) and each path parameter, an id in its one
/// canonical form. `/v1/orders/019AC…` and `/v1/orders/019ac…` name the same order, so they are the same target;
/// a parameter that is no id stays as it is (such a request is a 404 that runs nothing).
pub fn target<'a>(route: &str, parameters: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
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
    use super::*;
    use serde_json::json;

    fn of(body: &str) -> Fingerprint {
        Fingerprint::of(
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
        let base = Fingerprint::of(&Method::POST, "/v1/orders", &body);
        assert_ne!(base, of(r#"{"a": [2, 1]}"#));
        assert_ne!(base, of(r#"{"a": [1, 2], "b": null}"#));
        assert_ne!(base, Fingerprint::of(&Method::PATCH, "/v1/orders", &body));
        assert_ne!(base, Fingerprint::of(&Method::POST, "/v1/templates", &body));
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
}
