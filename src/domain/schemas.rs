//! JSON Schemas for values whose rules a derive cannot state, built from the same constants the domain checks,
//! so that the documented shape of a request and the shape the server accepts are the same.

use std::borrow::Cow;

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        Object, ObjectBuilder, RefOr, Schema, Type,
        schema::{AdditionalProperties, KnownFormat, SchemaFormat, SchemaType},
    },
};

use super::{
    MAX_CONTENT_BYTES,
    country::{ASSIGNED, CountryCode},
    merge::{MAX_MERGE_FIELD_LENGTH, MAX_MERGE_VALUE_LENGTH, MAX_MERGE_VARIABLES},
    metadata::{MAX_METADATA_KEY_LENGTH, MAX_METADATA_KEYS, MAX_METADATA_VALUE_LENGTH},
};

/// Control characters (Unicode Cc), never allowed in text.
const CONTROL: &str = r"\x00-\x1F\x7F-\x9F";
/// Format characters (Unicode Cf) of the Basic Multilingual Plane, never allowed in text. The server refuses the
/// whole category (`validation::text`); the few outside this plane (U+110BD, U+13430–U+1343F, U+E0001, ...) are left
/// out of the pattern, which is written without the `u` flag that not every JSON Schema validator supports.
const FORMAT: &str = r"\xAD\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF\uFFF9-\uFFFB";
/// Whitespace that is not a control character (Unicode White_Space): text of only these is blank.
const BLANK: &str = r"\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// Text of 1 to `max` characters, no control or format characters, not blank.
fn text(max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(format!(
            "^[^{CONTROL}{FORMAT}]*[^{CONTROL}{FORMAT}{BLANK}][^{CONTROL}{FORMAT}]*$"
        )))
}

pub fn text_200() -> Object {
    text(200).build()
}

pub fn text_100() -> Object {
    text(100).build()
}

pub fn text_20() -> Object {
    text(20).build()
}

pub fn optional_text_200() -> Object {
    text(200)
        .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
        .build()
}

/// `CountryCode`: one named schema that every address refers to, so that generated clients have one country enum.
impl PartialSchema for CountryCode {
    fn schema() -> RefOr<Schema> {
        country().into()
    }
}

impl ToSchema for CountryCode {}

/// An assigned ISO 3166-1 alpha-2 code.
fn country() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("An assigned ISO 3166-1 alpha-2 code, upper case."))
        .enum_values(Some(ASSIGNED))
        .examples([serde_json::json!("NL")])
        .build()
}

/// The pattern of a merge field name.
fn merge_field_name() -> String {
    format!(
        "[A-Za-z_][A-Za-z0-9_.-]{{0,{}}}",
        MAX_MERGE_FIELD_LENGTH - 1
    )
}

/// HTML whose every `{{` opens a well-formed placeholder.
pub fn template_content() -> Object {
    let name = merge_field_name();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "HTML of 1 byte to 512 KiB (in UTF-8), without NUL characters. Every `{{` opens a placeholder: a merge field name of 1 to 100 \
             letters, digits, `_`, `-` or `.` that starts with a letter or `_`, optionally padded with spaces, \
             closed by `}}`. A placeholder stands in text or in a quoted attribute value; one in an unquoted \
             value, a tag or attribute name, a comment, a `script` or `style` element or another element whose text is not \
             HTML, an event handler, a `style` or `srcdoc` attribute, or at the start of a URL attribute (`href`, \
             `src`, ...) is refused.",
        ))
        .min_length(Some(1))
        .max_length(Some(MAX_CONTENT_BYTES))
        .pattern(Some(format!(r"^(?:[^{{\x00]|\{{[^{{\x00]|\{{\{{ *{name} *\}}\}})*\{{?$")))
        .examples([serde_json::json!("<p>Hello {{first_name}}, welcome to {{city}}!</p>")])
        .build()
}

/// Merge variables: names like merge fields, string values.
fn merge_variables_builder() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(format!("^{}$", merge_field_name()))),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(MAX_MERGE_VALUE_LENGTH))
                .pattern(Some(r"^[^\x00]*$"))
                .into(),
        )))
        .max_properties(Some(MAX_MERGE_VARIABLES))
        .examples([serde_json::json!({"first_name": "Anna", "city": "Amsterdam"})])
}

/// The named schema `MergeVariables`, which orders and the requests that create and change them refer to.
pub struct MergeVariablesSchema;

impl PartialSchema for MergeVariablesSchema {
    fn schema() -> RefOr<Schema> {
        merge_variables_builder()
            .description(Some("The values of a template's merge fields, by name."))
            .build()
            .into()
    }
}

impl ToSchema for MergeVariablesSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("MergeVariables")
    }
}

/// A metadata key: 1 to 40 characters, without `[`, `]` or NUL.
fn metadata_key() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_METADATA_KEY_LENGTH))
        .pattern(Some(r"^[^\[\]\x00]*$"))
}

/// A metadata value: at most 500 characters, without NUL.
fn metadata_value() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_METADATA_VALUE_LENGTH))
        .pattern(Some(r"^[^\x00]*$"))
}

/// The named schema `Metadata`, which orders, templates and the requests that create them refer to: at most 20
/// string values by key.
pub struct MetadataSchema;

impl PartialSchema for MetadataSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Your own key/value pairs, e.g. a customer id or a campaign: at most 20 keys of 1 to 40 \
                 characters (without `[` and `]`), values of at most 500 characters.",
            ))
            .property_names(Some(metadata_key()))
            .additional_properties(Some(AdditionalProperties::RefOr(metadata_value().into())))
            .max_properties(Some(MAX_METADATA_KEYS))
            .examples([serde_json::json!({"customer_id": "4711"})])
            .build()
            .into()
    }
}

impl ToSchema for MetadataSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Metadata")
    }
}

/// The named schema `MetadataChanges`, the metadata member of a PATCH: merged into the current metadata, a `null`
/// value removes its key (`null` for the whole member, which the requests allow, removes every key).
pub struct MetadataChangesSchema;

impl PartialSchema for MetadataChangesSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Merged into the metadata: a value sets its key, `null` removes it. At most 20 keys remain.",
            ))
            .property_names(Some(metadata_key()))
            .additional_properties(Some(AdditionalProperties::RefOr(
                metadata_value()
                    .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
                    .into(),
            )))
            .max_properties(Some(MAX_METADATA_KEYS))
            .examples([serde_json::json!({"campaign": "winter-2026", "source": null})])
            .build()
            .into()
    }
}

impl ToSchema for MetadataChangesSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("MetadataChanges")
    }
}

/// A date as `YYYY-MM-DD`, or `null`.
pub fn optional_date() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        .build()
}

/// An object id: a UUID in its hyphenated form.
pub fn id() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .build()
}
