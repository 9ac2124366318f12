//! IdempotencyKey: the `Idempotency-Key` header, parsed and checked.

use std::fmt;

use axum::http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The longest key, in characters.
pub use crate::domain::MAX_IDEMPOTENCY_KEY_LENGTH as MAX_LENGTH;

/// Hex digits of the key's SHA-256 that logs show in its place: 48 bits, enough to tell keys apart.
const DIGEST_HEX_DIGITS: usize = 12;

/// 1 to 255 characters of printable ASCII (0x20 to 0x7E).
///
/// Clients often derive keys from their own data (a customer id, a postal code and house number), so a key is
/// personal data: `Debug` and logs show only its [`digest`](Self::digest).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdempotencyKey")
            .field(&self.digest())
            .finish()
    }
}

impl IdempotencyKey {
    /// The request's key: `None` without the header, 400 when it is sent more than once or is not a valid key.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(invalid("send the Idempotency-Key header once"));
        }
        Self::parse(value.as_bytes()).map(Some)
    }

    /// A header value as a key; a value in double quotes is an RFC 8941 string and is unquoted first.
    pub fn parse(value: &[u8]) -> Result<Self, ApiError> {
        let value = match value {
            [b'"', ..] => unquote(value)?,
            _ => value.to_vec(),
        };
        if value.is_empty() {
            return Err(invalid("the key is empty"));
        }
        if value.len() > MAX_LENGTH {
            return Err(invalid(&format!(
                "the key is longer than {MAX_LENGTH} characters"
            )));
        }
        if !value.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err(invalid(
                "the key may only hold printable ASCII characters (0x20 to 0x7E)",
            ));
        }
        // Printable ASCII is UTF-8.
        Ok(Self(String::from_utf8(value).map_err(ApiError::internal)?))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What logs show instead of the key: the first 12 hex digits of its SHA-256, the same on every server, so that
    /// the lines of one key can be found together without the key itself being written anywhere.
    pub fn digest(&self) -> String {
        let mut digest = hex::encode(Sha256::digest(self.0.as_bytes()));
        digest.truncate(DIGEST_HEX_DIGITS);
        digest
    }
}

/// An RFC 8941 sf-string: `"` printable ASCII with `\"` and `\\` escapes `"`.
fn unquote(value: &[u8]) -> Result<Vec<u8>, ApiError> {
    let malformed = || invalid("a quoted key must be a structured-field string (RFC 8941)");
    let inner = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .ok_or_else(malformed)?;
    let mut unquoted = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'\\' => match bytes.next() {
                Some(&escaped @ (b'"' | b'\\')) => unquoted.push(escaped),
                _ => return Err(malformed()),
            },
            b'"' => return Err(malformed()),
            _ => unquoted.push(byte),
        }
    }
    Ok(unquoted)
}

fn invalid(reason: &str) -> ApiError {
    ApiError::InvalidIdempotencyKey(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(value: &str) -> Result<String, ApiError> {
        IdempotencyKey::parse(value.as_bytes()).map(|k| k.0)
    }

    #[test]
    fn printable_ascii_with_inner_spaces_is_a_key() {
        assert_eq!(key("3511 AB-12").unwrap(), "3511 AB-12");
        assert_eq!(key("~!@#$%^&*()").unwrap(), "~!@#$%^&*()");
    }

    #[test]
    fn length_is_1_to_255() {
        assert!(key(&"k".repeat(255)).is_ok());
        assert!(key(&"k".repeat(256)).is_err());
        assert!(key("").is_err());
        assert!(key("\"\"").is_err());
    }

    #[test]
    fn quoted_keys_are_unquoted() {
        assert_eq!(key("\"abc\"").unwrap(), "abc");
        assert_eq!(key(r#""a\"b\\c""#).unwrap(), r#"a"b\c"#);
        assert!(key(r#""a\nb""#).is_err());
        assert!(key("\"abc").is_err());
        assert!(key(r#""a"b""#).is_err());
        // 255 characters inside the quotes are fine.
        assert!(key(&format!("\"{}\"", "k".repeat(255))).is_ok());
    }

    #[test]
    fn control_and_non_ascii_bytes_are_rejected() {
        assert!(IdempotencyKey::parse(b"a\tb").is_err());
        assert!(IdempotencyKey::parse(b"a\x7fb").is_err());
        assert!(IdempotencyKey::parse("caf\u{e9}".as_bytes()).is_err());
    }

    #[test]
    fn the_header_must_be_sent_once() {
        let mut headers = HeaderMap::new();
        assert!(IdempotencyKey::from_headers(&headers).unwrap().is_none());
        headers.append(IDEMPOTENCY_KEY, "a".parse().unwrap());
        assert!(IdempotencyKey::from_headers(&headers).unwrap().is_some());
        headers.append(IDEMPOTENCY_KEY, "b".parse().unwrap());
        assert!(IdempotencyKey::from_headers(&headers).is_err());
    }
}
