//! Member: one member of a request object as it was sent (absent, `null`, a value, or a value of the wrong type),
//! so that a body with several problems has them all found in one pass rather than the first one only.

use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeOwned, Visitor},
};
use serde_json::{Map, Value};

/// A member of a request object, read without failing: serde stops at the first member that does not fit, so each
/// member is read on its own and what does not fit is kept as an error for the [`Validator`] to report.
///
/// Use with `#[serde(default)]` so that an absent member becomes `Absent`.
///
/// [`Validator`]: super::validation::Validator
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Member<T> {
    #[default]
    Absent,
    Null,
    Value(T),
    /// Not a `T`: the dotted path inside the member where it does not fit (empty for the member itself), and why.
    Invalid {
        path: String,
        message: String,
    },
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Member<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if value.is_null() {
            return Ok(Self::Null);
        }
        Ok(match serde_path_to_error::deserialize(value) {
            Ok(value) => Self::Value(value),
            Err(error) => {
                let path = error.path().to_string();
                Self::Invalid {
                    path: if path == "." { String::new() } else { path },
                    message: in_json_terms(&error.into_inner().to_string()),
                }
            }
        })
    }
}

/// A serde message about a value that does not fit, said in JSON's terms rather than Rust's: `invalid type:
/// string "Anna", expected struct AddressInput` becomes `must be an object, not a string`.
///
/// serde names the Rust type it expected; a client sends JSON and knows nothing of those names.
pub fn in_json_terms(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((unexpected, expected)) = rest.split_once(", expected ")
    {
        return format!(
            "must be {}, not {}",
            expected_in_json(expected),
            unexpected_in_json(unexpected)
        );
    }
    if let Some(rest) = message.strip_prefix("invalid value: ")
        && let Some((_, expected)) = rest.split_once(", expected ")
    {
        return format!("must be {}", expected_in_json(expected));
    }
    if let Some(rest) = message.strip_prefix("unknown variant ")
        && let Some((_, expected)) = rest.split_once(", expected ")
    {
        let expected = expected.strip_prefix("one of ").unwrap_or(expected);
        return format!("must be one of {expected}");
    }
    if let Some(rest) = message.strip_prefix("invalid length ")
        && let Some((_, expected)) = rest.split_once(", expected ")
    {
        return format!("must be {}", expected_in_json(expected));
    }
    if message.starts_with("data did not match any variant") {
        return "has the wrong type".to_owned();
    }
    message.to_owned()
}

/// What serde's `expected …` names, as a JSON value.
fn expected_in_json(expected: &str) -> &'static str {
    let expected = expected.trim();
    match expected {
        _ if expected.starts_with("struct ") || expected.contains("map") => "an object",
        _ if expected.contains("sequence") || expected.contains("tuple") => "an array",
        _ if expected.starts_with("enum ") || expected.contains("identifier") => "a string",
        "a string" | "string" | "a borrowed string" | "a character" | "char" => "a string",
        "a boolean" | "bool" => "true or false",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "an integer" => "an integer",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "an integer of 0 or more",
        "f32" | "f64" | "a float" => "a number",
        "unit" | "null" => "null",
        _ => "a value of another type",
    }
}

/// What serde's `invalid type: …` found, as a JSON value.
fn unexpected_in_json(unexpected: &str) -> &'static str {
    match unexpected.split_whitespace().next().unwrap_or_default() {
        "string" | "character" => "a string",
        "integer" => "a number",
        "floating" => "a fractional number",
        "boolean" => "true or false",
        "sequence" => "an array",
        "map" => "an object",
        "null" | "unit" => "null",
        _ => "that",
    }
}

/// The members of a request object that it does not define, kept to be reported (with `#[serde(flatten)]`)
/// instead of stopping at the first as `deny_unknown_fields` would.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct UnknownMembers(pub Map<String, Value>);

/// The names of the members `T` is read from, as its derived `Deserialize` declares them; empty for no struct.
pub fn members_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut members: &'static [&'static str] = &[];
    // Serde's derive hands a struct's member names to `deserialize_struct`, which takes them and reads nothing.
    let _ = T::deserialize(MemberNames(&mut members));
    members
}

/// A deserializer that records the member names a struct asks for, and fails.
struct MemberNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for MemberNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        members: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = members;
        Err(de::Error::custom("only the member names are read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default)]
        a: Member<String>,
        #[serde(default)]
        b: Member<BTreeMap<String, String>>,
        #[serde(default)]
        c: Member<String>,
        #[serde(default)]
        d: Member<String>,
        #[serde(flatten)]
        unknown: UnknownMembers,
    }

    #[test]
    fn every_member_is_read_on_its_own() {
        let body: Body =
            serde_json::from_value(json!({"a": 1, "b": {"x": "y", "z": 2}, "c": null, "e": true}))
                .unwrap();
        assert!(
            matches!(&body.a, Member::Invalid { path, message } if path.is_empty() && message == "must be a string, not a number")
        );
        assert!(matches!(&body.b, Member::Invalid { path, .. } if path == "z"));
        assert_eq!(body.c, Member::Null);
        assert_eq!(body.d, Member::Absent);
        assert_eq!(body.unknown.0.keys().collect::<Vec<_>>(), ["e"]);
    }

    #[test]
    fn serde_messages_are_said_in_json_terms() {
        for (serde, json) in [
            (
                r#"invalid type: string "Anna", expected struct AddressInput"#,
                "must be an object, not a string",
            ),
            (
                "invalid type: sequence, expected a string",
                "must be a string, not an array",
            ),
            (
                "invalid type: map, expected a sequence",
                "must be an array, not an object",
            ),
            (
                "invalid type: floating point `1.5`, expected i64",
                "must be an integer, not a fractional number",
            ),
            (
                "invalid type: boolean `true`, expected a map",
                "must be an object, not true or false",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "must be an integer of 0 or more",
            ),
            (
                "unknown variant `zz`, expected one of `a`, `b`",
                "must be one of `a`, `b`",
            ),
            ("must be 1 to 200 characters", "must be 1 to 200 characters"),
        ] {
            assert_eq!(in_json_terms(serde), json, "{serde}");
        }
    }
}
