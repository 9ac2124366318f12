//! The request body: read whole within the configured limit, and parsed as JSON, for the extractors and for the
//! layers that need it before the handler runs.

use axum::{
    body::Bytes,
    extract::Request,
    http::{HeaderMap, header},
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, SeqAccess, Visitor},
};

use serde_json::{Map, Value, error::Category};
use std::fmt;

use crate::{http::error::ApiError, state::AppState};

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

/// The body as JSON: 415 unless the content type is `application/json`, 400 unless it parses as one JSON text
/// whose objects name each member once.
pub fn parse_json(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    check_media_type(headers)?;
    if body.is_empty() {
        return Err(ApiError::MalformedJson(
            "The request body is empty; send a JSON object.".to_owned(),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = UniqueMembers::deserialize(&mut deserializer).and_then(|UniqueMembers(value)| {
        deserializer.end()?;
        Ok(value)
    });
    parsed.map_err(|e| match e.classify() {
        // The only data error of `UniqueMembers` is a repeated member name; the rest is syntax.
        Category::Data => ApiError::DuplicateMemberName(format!("The body {e}.")),
        _ => ApiError::MalformedJson(format!("The body is not valid JSON: {e}.")),
    })
}

/// Whether the body is sent as JSON: `application/json`, with no parameter but an optional `charset` of UTF-8.
pub fn sends_json(headers: &HeaderMap) -> bool {
    is_json(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    )
}

/// 415 unless the body is sent as `application/json`, with no parameter but an optional `charset` of UTF-8.
///
/// RFC 8259 (section 8.1) makes JSON between systems UTF-8 and `application/json` defines no parameters; a
/// `charset=utf-8` is common and harmless, in any case and quoted or not. Every other type is refused, the `+json`
/// types included: `application/merge-patch+json` (RFC 7396) would promise a merge of nested objects that a PATCH
/// here does not do.
fn check_media_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if is_json(content_type) {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(if content_type.is_empty() {
        "Send the body with `Content-Type: application/json`.".to_owned()
    } else {
        format!(
            "`{content_type}` is not supported; send the body as `application/json` (UTF-8, the only charset)."
        )
    }))
}

fn is_json(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|parameter| {
        let Some((name, value)) = parameter.split_once('=') else {
            return false;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        name.trim().eq_ignore_ascii_case("charset") && value.eq_ignore_ascii_case("utf-8")
    })
}

/// A JSON value whose objects name each member once (RFC 8259, section 4: names SHOULD be unique; I-JSON, RFC 7493
/// section 2.3, MUST). With a repeated name, parsers disagree on which value counts (first, last, or an error),
/// so a proxy and the service could read two different requests from one body; the service refuses it instead.
struct UniqueMembers(Value);

impl<'de> Deserialize<'de> for UniqueMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueMembersVisitor).map(Self)
    }
}

struct UniqueMembersVisitor;

impl<'de> Visitor<'de> for UniqueMembersVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN nor infinity, so every parsed float is finite.
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueMembers(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(de::Error::custom(format_args!(
                    "names the member `{name}` twice"
                )));
            }
            let UniqueMembers(value) = map.next_value()?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
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

    fn with_type(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        headers
    }

    #[test]
    fn json_with_a_utf8_charset_in_any_spelling_is_accepted() {
        for accepted in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
            "application/json; charset=\"utf-8\"",
        ] {
            assert!(is_json(accepted), "{accepted}");
        }
    }

    #[test]
    fn other_types_charsets_and_parameters_are_refused() {
        for refused in [
            "",
            "text/plain",
            "application/merge-patch+json",
            "application/vnd.api+json",
            "application/json; charset=latin1",
            "application/json; charset=utf-16",
            "application/json; profile=x",
            "application/json; charset",
            "application/jsonx",
        ] {
            assert!(!is_json(refused), "{refused}");
        }
    }

    #[test]
    fn repeated_member_names_are_refused_at_any_depth() {
        let headers = with_type("application/json");
        for body in [
            r#"{"name":"a","name":"b"}"#,
            r#"{"recipient":{"city":"a","city":"a"}}"#,
            r#"[{"a":1,"a":1}]"#,
        ] {
            let error = parse_json(&headers, body.as_bytes()).unwrap_err();
            assert!(
                matches!(error, ApiError::DuplicateMemberName(_)),
                "{body}: {error:?}"
            );
        }
        assert!(matches!(
            parse_json(&headers, b"{\"a\":1,"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_json(&headers, b"{} {}"),
            Err(ApiError::MalformedJson(_))
        ));
    }

    #[test]
    fn values_are_read_as_serde_json_reads_them() {
        let headers = with_type("application/json");
        let value = parse_json(
            &headers,
            br#"{"z":1,"a":[true,null,-2,2.5,"s"],"m":{"y":{},"b":18446744073709551615}}"#,
        )
        .unwrap();
        assert_eq!(
            value,
            serde_json::json!({"z":1,"a":[true,null,-2,2.5,"s"],"m":{"y":{},"b":18446744073709551615u64}})
        );
    }
}
