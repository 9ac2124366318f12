//! Templates: their format, their HTML content and the merge fields found in it.

pub mod markup;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use std::ops::Range;

use super::{
    MAX_CONTENT_BYTES,
    input::patch::Patch,
    input::validation::{FieldError, Problems, ValidationError, text},
    merge::{MergeVariables, parse_merge_field_name},
    metadata::{Metadata, MetadataChanges, merge_metadata},
    schemas,
};

/// The longest template name, in characters.
pub const MAX_NAME_LENGTH: usize = 200;

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

/// A template, as the API returns it: its latest version, with what is not printed (its metadata).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e",
    "name": "Welcome postcard",
    "format": "postcard_a6",
    "content": "<p>Hello {{first_name}}, welcome to {{city}}!</p>",
    "merge_fields": ["city", "first_name"],
    "version": 1,
    "metadata": {"campaign": "winter-2026"},
    "created_at": "2026-11-28T12:00:00.000000Z",
    "updated_at": "2026-11-28T12:00:00.000000Z"
}))]
pub struct Template {
    pub id: Uuid,
    pub name: String,
    pub format: TemplateFormat,
    /// HTML with `{{field}}` merge placeholders.
    pub content: String,
    /// The distinct placeholder names in `content`, sorted; derived, read-only.
    pub merge_fields: Vec<String>,
    /// The latest version: 1 on creation, one more on every PATCH that changes `name`, `format` or `content`.
    pub version: i32,
    #[schema(value_type = schemas::MetadataSchema)]
    pub metadata: Metadata,
    #[serde(with = "super::timestamp")]
    pub created_at: OffsetDateTime,
    /// When the template last changed: a new version or its metadata.
    #[serde(with = "super::timestamp")]
    pub updated_at: OffsetDateTime,
    /// 1 when created, one more with every change, a new version or metadata alone: the version its entity tag
    /// names. Sent as `ETag`, not in the body.
    #[serde(skip)]
    pub row_version: i32,
}

impl Template {
    pub fn location(&self) -> String {
        format!("/v1/templates/{}", self.id)
    }
}

/// One version of a template, as it was written: never changed afterwards, so that an order taken against it
/// prints what was ordered.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "template_id": "019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e",
    "version": 1,
    "name": "Welcome postcard",
    "format": "postcard_a6",
    "content": "<p>Hello {{first_name}}, welcome to {{city}}!</p>",
    "merge_fields": ["city", "first_name"],
    "created_at": "2026-11-28T12:00:00.000000Z"
}))]
pub struct TemplateVersion {
    pub template_id: Uuid,
    /// 1 for the template as it was created, one more for each change.
    pub version: i32,
    pub name: String,
    pub format: TemplateFormat,
    /// HTML with `{{field}}` merge placeholders.
    pub content: String,
    /// The distinct placeholder names in `content`, sorted.
    pub merge_fields: Vec<String>,
    /// When this version was written.
    #[serde(with = "super::timestamp")]
    pub created_at: OffsetDateTime,
}

impl TemplateVersion {
    /// The content with every placeholder filled from `variables`, HTML-escaped ([`render`]).
    pub fn render(&self, variables: &MergeVariables) -> Result<String, RenderError> {
        render(&self.content, variables)
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
    pub metadata: Patch<MetadataChanges>,
}

/// What a PATCH changes of a template: a new version when what is printed changes, and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateUpdate {
    /// The next version, when `name`, `format` or `content` change.
    pub version: Option<NewTemplate>,
    pub metadata: Metadata,
}

impl TemplateChanges {
    /// The template's update, `None` when the changes change nothing; an error when the merged metadata breaks
    /// its limits.
    pub fn apply_to(self, current: &Template) -> Result<Option<TemplateUpdate>, ValidationError> {
        let next = NewTemplate {
            name: self.name.unwrap_or_else(|| current.name.clone()),
            format: self.format.unwrap_or(current.format),
            content: self.content.unwrap_or_else(|| TemplateContent {
                html: current.content.clone(),
                merge_fields: current.merge_fields.clone(),
            }),
        };
        let new_version = next.name != current.name
            || next.format != current.format
            || next.content.html != current.content;
        let metadata = merge_metadata(&current.metadata, self.metadata).map_err(|message| {
            ValidationError::Fields(vec![FieldError::new("metadata", message)])
        })?;
        if !new_version && metadata == current.metadata {
            return Ok(None);
        }
        Ok(Some(TemplateUpdate {
            version: new_version.then_some(next),
            metadata,
        }))
    }
}

/// A template name: 1 to [`MAX_NAME_LENGTH`] characters.
pub fn parse_name(name: String) -> Result<String, String> {
    text(name, MAX_NAME_LENGTH)
}

/// What content of the wrong size is told: the one wording, which the database's CHECK constraint answers with too.
pub fn content_size_rule() -> String {
    format!("must be 1 to {MAX_CONTENT_BYTES} bytes")
}

/// Template content with the merge fields it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateContent {
    pub html: String,
    pub merge_fields: Vec<String>,
}

impl TemplateContent {
    /// 1 byte to 512 KiB, with well-formed placeholders, each in text or a quoted attribute value; every broken
    /// placeholder is reported, in the order of the content.
    pub fn parse(html: String) -> Result<Self, Problems> {
        if html.is_empty() || html.len() > MAX_CONTENT_BYTES {
            return Err(content_size_rule().into());
        }
        if html.contains('\0') {
            return Err("must not contain NUL characters (U+0000)".to_owned().into());
        }
        let placeholders = placeholders(&html);
        let mut broken: Vec<(usize, String)> = placeholders
            .iter()
            .filter_map(|placeholder| match &placeholder.name {
                Ok(_) => None,
                Err(reason) => Some((placeholder.range.start, reason.clone())),
            })
            .collect();
        let ranges: Vec<Range<usize>> = placeholders
            .iter()
            .map(|placeholder| placeholder.range.clone())
            .collect();
        for (index, reason) in markup::misplaced(&html, &ranges) {
            let placeholder = &placeholders[index];
            if placeholder.name.is_ok() {
                let written = &html[placeholder.range.clone()];
                broken.push((placeholder.range.start, format!("`{written}` {reason}")));
            }
        }
        if !broken.is_empty() {
            broken.sort_by_key(|(at, _)| *at);
            return Err(Problems(
                broken
                    .into_iter()
                    .map(|(at, message)| {
                        format!("{}: placeholder {message}", line_and_column(&html, at))
                    })
                    .collect(),
            ));
        }
        let merge_fields = merge_fields(&html).map_err(Problems::from)?;
        Ok(Self { html, merge_fields })
    }
}

/// A piece of template content: text printed as it is, or a placeholder that a merge variable fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    /// The merge field name of a `{{name}}` placeholder.
    Field(&'a str),
}

/// A `{{` of template content up to its `}}` (or the end): its bytes, and its name or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placeholder<'a> {
    range: Range<usize>,
    name: Result<&'a str, String>,
}

/// Every placeholder of `html`: the one definition of what a placeholder is.
///
/// Every `{{` must open a placeholder: a name (letters, digits, `_`, `-`, `.`, starting with a letter or `_`),
/// optionally padded with spaces, closed by `}}`. Anything else is an error, so that a typo cannot print as text.
fn placeholders(html: &str) -> Vec<Placeholder<'_>> {
    let mut placeholders = Vec::new();
    let mut from = 0;
    while let Some(start) = html[from..].find("{{").map(|at| from + at) {
        let after = start + 2;
        let Some(end) = html[after..].find("}}").map(|at| after + at) else {
            placeholders.push(Placeholder {
                range: start..html.len(),
                name: Err(format!(
                    "`{}` is not closed with `}}}}`",
                    excerpt(&html[start..])
                )),
            });
            break;
        };
        let name = html[after..end].trim_matches(' ');
        placeholders.push(Placeholder {
            range: start..end + 2,
            name: parse_merge_field_name(name)
                .map(|()| name)
                .map_err(|reason| format!("`{{{{{}}}}}`: {reason}", excerpt(&html[after..end]))),
        });
        from = end + 2;
    }
    placeholders
}

/// Cuts `html` into text and placeholders (`placeholders`); the first broken placeholder is an error.
pub fn segments(html: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut segments = Vec::new();
    let mut rest = 0;
    for placeholder in placeholders(html) {
        let name = placeholder
            .name
            .map_err(|reason| format!("placeholder {reason}"))?;
        if placeholder.range.start > rest {
            segments.push(Segment::Text(&html[rest..placeholder.range.start]));
        }
        segments.push(Segment::Field(name));
        rest = placeholder.range.end;
    }
    if rest < html.len() {
        segments.push(Segment::Text(&html[rest..]));
    }
    Ok(segments)
}

/// Where byte `at` of `text` is, as people count: `line 2, column 7` (lines and characters from 1).
fn line_and_column(text: &str, at: usize) -> String {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    format!("line {line}, column {column}")
}

/// The sorted, distinct names of the `{{name}}` placeholders in `html` (see [`segments`]).
pub fn merge_fields(html: &str) -> Result<Vec<String>, String> {
    let mut fields: Vec<String> = segments(html)?
        .into_iter()
        .filter_map(|segment| match segment {
            Segment::Field(name) => Some(name.to_owned()),
            Segment::Text(_) => None,
        })
        .collect();
    fields.sort_unstable();
    fields.dedup();
    Ok(fields)
}

/// Why content could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The variables lack these merge fields, sorted.
    #[error("merge variables are missing: {}", .0.join(", "))]
    MissingMergeVariables(Vec<String>),
    /// Stored content whose placeholders do not parse: every content is parsed before it is written, so a bug.
    #[error("stored template content is malformed: {0}")]
    Malformed(String),
}

/// `html` with every placeholder replaced by its merge variable, escaped ([`markup::escape`]), so that a variable
/// prints as text, never as markup, where content may hold a placeholder (text and quoted attribute values: HTML
/// Living Standard, 13.1.2.3 and 13.1.4). The text around placeholders is the template's own HTML, byte for byte.
pub fn render(html: &str, variables: &MergeVariables) -> Result<String, RenderError> {
    let segments = segments(html).map_err(RenderError::Malformed)?;
    let mut missing: Vec<String> = segments
        .iter()
        .filter_map(|segment| match segment {
            Segment::Field(name) if !variables.contains_key(*name) => Some((*name).to_owned()),
            _ => None,
        })
        .collect();
    if !missing.is_empty() {
        missing.sort_unstable();
        missing.dedup();
        return Err(RenderError::MissingMergeVariables(missing));
    }
    let mut out = String::with_capacity(html.len());
    for segment in segments {
        match segment {
            Segment::Text(text) => out.push_str(text),
            Segment::Field(name) => {
                let value = variables.get(name).map_or("", String::as_str);
                markup::escape(value, &mut out);
            }
        }
    }
    Ok(out)
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
    fn segments_keep_the_text_between_placeholders() {
        assert_eq!(
            segments("<p>{{ a }}-{{b}}</p>").unwrap(),
            [
                Segment::Text("<p>"),
                Segment::Field("a"),
                Segment::Text("-"),
                Segment::Field("b"),
                Segment::Text("</p>")
            ]
        );
    }

    #[test]
    fn render_escapes_variables_and_keeps_the_template_html() {
        let variables = MergeVariables::from([(
            "name".to_owned(),
            r#"<script>"Tom" & 'Jerry'</script>"#.to_owned(),
        )]);
        assert_eq!(
            render(r#"<p title="{{name}}">{{ name }}</p>"#, &variables).unwrap(),
            "<p title=\"&lt;script&gt;&quot;Tom&quot; &amp; &#x27;Jerry&#x27;&lt;/script&gt;\">\
             &lt;script&gt;&quot;Tom&quot; &amp; &#x27;Jerry&#x27;&lt;/script&gt;</p>"
        );
    }

    #[test]
    fn render_names_every_missing_variable_once() {
        assert_eq!(
            render("{{b}} {{a}} {{b}}", &MergeVariables::new()),
            Err(RenderError::MissingMergeVariables(vec![
                "a".to_owned(),
                "b".to_owned()
            ]))
        );
    }

    #[test]
    fn content_size_is_counted_in_bytes() {
        assert!(TemplateContent::parse("a".repeat(MAX_CONTENT_BYTES)).is_ok());
        assert!(TemplateContent::parse("a".repeat(MAX_CONTENT_BYTES + 1)).is_err());
        assert!(TemplateContent::parse(String::new()).is_err());
        assert!(TemplateContent::parse("a\0b".to_owned()).is_err());
    }
}
