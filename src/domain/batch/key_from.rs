//! The key of a batch row derived from its data (`key_from`): a customer id, or postal code and house number.

use std::collections::HashSet;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{MAX_KEY_FROM, member_path};
use crate::domain::{MAX_IDEMPOTENCY_KEY_LENGTH, input::validation::FieldError};

/// The fields a row's key is derived from when it has no `idempotency_key` of its own.
///
/// The key is `<fields>:<values>`: the field names joined by `,`, then each field's value normalised (surrounding
/// white space trimmed, inner runs of white space made one space, postal codes in lower case), percent-encoded
/// except for the RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) and joined by `|`. The encoding keeps
/// `|` out of the values, so the values cannot run into each other, and keeps the key printable ASCII; the field
/// names in front keep keys derived from other fields apart. A key longer than 255 characters is replaced by
/// `sha256:` and the lower-case hex SHA-256 of it. Example: `recipient.postal_code,recipient.house_number:1015%20cj|123A`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFrom {
    fields: Vec<(String, Vec<String>)>,
}

impl KeyFrom {
    /// 1 to 10 distinct field names of the order body (the CSV column names, `idempotency_key` excepted).
    pub fn parse(fields: Vec<String>) -> Result<Self, String> {
        if fields.is_empty() || fields.len() > MAX_KEY_FROM {
            return Err(format!("must name 1 to {MAX_KEY_FROM} fields"));
        }
        let mut seen = HashSet::new();
        let mut parsed = Vec::with_capacity(fields.len());
        for field in fields {
            if !seen.insert(field.clone()) {
                return Err(format!("names `{field}` twice"));
            }
            let Some(path) = member_path(&field) else {
                return Err(format!(
                    "`{}` is not a field of an order: use template_id, send_date, recipient.<member>, \
                     sender.<member>, merge_variables.<field> or metadata.<key>",
                    field.chars().take(100).collect::<String>()
                ));
            };
            parsed.push((field, path));
        }
        Ok(Self { fields: parsed })
    }

    /// A comma-separated list, as in a query string.
    pub fn parse_list(list: &str) -> Result<Self, String> {
        Self::parse(list.split(',').map(|f| f.trim().to_owned()).collect())
    }

    /// The key of a row body; an error names the field that has no text to derive it from.
    pub fn derive(&self, body: &Value) -> Result<String, FieldError> {
        let mut key = self
            .fields
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(",");
        key.push(':');
        for (i, (name, path)) in self.fields.iter().enumerate() {
            let value = path
                .iter()
                .try_fold(body, |value, member| value.get(member))
                .and_then(Value::as_str)
                .map(|text| normalise(name, text))
                .filter(|text| !text.is_empty())
                .ok_or_else(|| {
                    FieldError::new(
                        name.as_str(),
                        "is needed to derive the idempotency key (key_from) and must be non-blank text",
                    )
                })?;
            if i > 0 {
                key.push('|');
            }
            percent_encode(&value, &mut key);
        }
        if key.len() > MAX_IDEMPOTENCY_KEY_LENGTH {
            return Ok(format!("sha256:{}", hex::encode(Sha256::digest(&key))));
        }
        Ok(key)
    }
}

/// Trims, collapses inner white space to one space, and case-folds postal codes.
fn normalise(field: &str, text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if field.ends_with(".postal_code") {
        collapsed.to_lowercase()
    } else {
        collapsed
    }
}

/// RFC 3986 percent-encoding of every byte but the unreserved characters.
fn percent_encode(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}
