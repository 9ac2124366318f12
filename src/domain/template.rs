//! Templates: their format, their HTML content and the merge fields found in it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::validation::text;

/// The largest template content, in bytes.
pub const MAX_CONTENT_BYTES: usize = 512 * 1024;
/// The longest merge field name, in characters.
pub const MAX_MERGE_FIELD_LENGTH: usize = 100;
/// The most merge variables an order may carry for its template's fields.
pub const MAX_MERGE_VARIABLES: usize = 500;
/// The longest merge variable value, in characters.
pub const MAX_MERGE_VALUE_LENGTH: usize = 10_000;

/// The printed product a template is laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum TemplateFormat {
    PostcardA6,
    PostcardA5,
    PostcardSquare,
    GreetingCard,
    LetterA4,
}

/// A template, as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e",
    "name": "Welcome postcard",
    "format": "postcard_a6",
    "content": "<p>Hello {{first_name}}, welcome to {{city}}!</p>",
    "merge_fields": ["city", "first_name"],
    "version": 1,
    "created_at": "2026-11-28T12:00:00Z",
    "updated_at": "2026-11-28T12:00:00Z"
}))]
pub struct Template {
    pub id: Uuid,
    pub name: String,
    pub format: TemplateFormat,
    /// HTML with `{{field}}` merge placeholders.
    pub content: String,
    /// The distinct placeholder names in `content`, sorted; derived, read-only.
    pub merge_fields: Vec<String>,
    /// 1 on creation, one more on every PATCH that changes something.
    pub version: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Template {
    pub fn location(&self) -> String {
        format!("/v1/templates/{}", self.id)
    }
}

/// A template that satisfies every rule, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTemplate {
    pub name: String,
    pub format: TemplateFormat,
    pub content: TemplateContent,
}

/// The members a PATCH sets; the others stay as they are.
#[derive(Debug, Clone, Default)]
pub struct TemplateChanges {
    pub name: Option<String>,
    pub format: Option<TemplateFormat>,
    pub content: Option<TemplateContent>,
}

impl TemplateChanges {
    /// The template as it is after the changes, or `None` when they change nothing.
    pub fn apply_to(self, current: &Template) -> Option<NewTemplate> {
        let next = NewTemplate {
            name: self.name.unwrap_or_else(|| current.name.clone()),
            format: self.format.unwrap_or(current.format),
            content: self.content.unwrap_or_else(|| TemplateContent {
                html: current.content.clone(),
                merge_fields: current.merge_fields.clone(),
            }),
        };
        let changed = next.name != current.name
            || next.format != current.format
            || next.content.html != current.content;
        changed.then_some(next)
    }
}

/// A template name: 1 to 200 characters.
pub fn parse_name(name: String) -> Result<String, String> {
    text(name, 200)
}

/// Template content with the merge fields it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateContent {
    pub html: String,
    pub merge_fields: Vec<String>,
}

impl TemplateContent {
    /// 1 byte to 512 KiB, with well-formed placeholders.
    pub fn parse(html: String) -> Result<Self, String> {
        if html.is_empty() || html.len() > MAX_CONTENT_BYTES {
            return Err(format!("must be 1 to {MAX_CONTENT_BYTES} bytes"));
        }
        if html.contains('\0') {
            return Err("must not contain NUL characters (U+0000)".to_owned());
        }
        let merge_fields = merge_fields(&html)?;
        Ok(Self { html, merge_fields })
    }
}

/// The sorted, distinct names of the `{{name}}` placeholders in `html`.
///
/// Every `{{` must open a placeholder: a name (letters, digits, `_`, `-`, `.`, starting with a letter or `_`),
/// optionally padded with spaces, closed by `}}`. Anything else is an error, so that a typo cannot print as text.
pub fn merge_fields(html: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!(
                "placeholder `{}` is not closed with `}}}}`",
                excerpt(&rest[start..])
            ));
        };
        let name = after[..end].trim_matches(' ');
        if let Err(reason) = parse_merge_field_name(name) {
            return Err(format!(
                "placeholder `{{{{{}}}}}`: {reason}",
                excerpt(&after[..end])
            ));
        }
        fields.push(name.to_owned());
        rest = &after[end + 2..];
    }
    fields.sort_unstable();
    fields.dedup();
    Ok(fields)
}

/// A merge field name: 1 to 100 of letters, digits, `_`, `-` and `.`, starting with a letter or `_`.
pub fn parse_merge_field_name(name: &str) -> Result<(), String> {
    let valid_start = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    let valid_rest = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid_start || !valid_rest || name.len() > MAX_MERGE_FIELD_LENGTH {
        return Err(format!(
            "a merge field name is 1 to {MAX_MERGE_FIELD_LENGTH} letters, digits, `_`, `-` or `.`, starting with a letter or `_`"
        ));
    }
    Ok(())
}

fn excerpt(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sorted_distinct_fields() {
        let html = "<p>{{ last_name }}, {{first_name}} {{last_name}} in {{address.city}}</p>";
        assert_eq!(
            merge_fields(html).unwrap(),
            ["address.city", "first_name", "last_name"]
        );
    }

    #[test]
    fn content_without_placeholders_has_no_fields() {
        assert!(
            merge_fields("<p>@media print { a { b: c }}</p>")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn rejects_malformed_placeholders() {
        assert!(merge_fields("Hi {{first name}}").is_err());
        assert!(merge_fields("Hi {{}}").is_err());
        assert!(merge_fields("Hi {{1st}}").is_err());
        assert!(merge_fields("Hi {{name").is_err());
    }

    #[test]
    fn content_size_is_counted_in_bytes() {
        assert!(TemplateContent::parse("a".repeat(MAX_CONTENT_BYTES)).is_ok());
        assert!(TemplateContent::parse("a".repeat(MAX_CONTENT_BYTES + 1)).is_err());
        assert!(TemplateContent::parse(String::new()).is_err());
        assert!(TemplateContent::parse("a\0b".to_owned()).is_err());
    }
}
