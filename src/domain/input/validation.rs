//! Field validation: collects every rule a request breaks, each under its dotted field path.

use serde::Serialize;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{RefOr, Schema},
};

use super::{
    member::{Member, UnknownMembers},
    patch::Patch,
};

/// One broken rule, named by the dotted path of its field in the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"field": "recipient.postal_code", "message": "must be 1 to 20 characters"}))]
pub struct FieldError {
    /// Dotted path of the field, e.g. `recipient.postal_code`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a value could not be built from a request; the HTTP edge turns it into a problem document.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Every rule the request broke (a 422 at the edge).
    #[error("The request has {} invalid field(s).", .0.len())]
    Fields(Vec<FieldError>),
    /// No rule was broken, yet a checked value was missing: a bug in the validation (a 500 at the edge).
    #[error("a validated value was missing")]
    Incomplete,
}

/// What is wrong with one field: mostly one thing, sometimes several (each misplaced placeholder of a template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl From<String> for Problems {
    fn from(message: String) -> Self {
        Self(vec![message])
    }
}

/// Collects the errors of several fields so that a client learns of all of them at once.
#[derive(Debug, Default)]
pub struct Validator {
    path: Vec<String>,
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives back the value of `result`, or records its errors under `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, impl Into<Problems>>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(problems) => {
                let field = self.path_to(field);
                for message in problems.into().0 {
                    self.errors.push(FieldError {
                        field: field.clone(),
                        message,
                    });
                }
                None
            }
        }
    }

    /// The value of a member that must be sent, or its problem recorded: absent, `null`, or not of its type.
    pub fn required<T>(&mut self, field: &str, member: Member<T>) -> Option<T> {
        match member {
            Member::Value(value) => Some(value),
            Member::Absent => self.check(field, Err("is required".to_owned())),
            Member::Null => self.check(field, Err("must not be null".to_owned())),
            Member::Invalid { path, message } => self.invalid(field, &path, message),
        }
    }

    /// [`Self::required`], then `rule` on the value.
    pub fn required_with<T, U, E: Into<Problems>>(
        &mut self,
        field: &str,
        member: Member<T>,
        rule: impl FnOnce(T) -> Result<U, E>,
    ) -> Option<U> {
        let value = self.required(field, member)?;
        self.check(field, rule(value))
    }

    /// The value of a member that may be left out or `null` (both `None`), or its problem recorded.
    pub fn optional<T>(&mut self, field: &str, member: Member<T>) -> Option<Option<T>> {
        match member {
            Member::Value(value) => Some(Some(value)),
            Member::Absent | Member::Null => Some(None),
            Member::Invalid { path, message } => self.invalid(field, &path, message),
        }
    }

    /// [`Self::optional`], then `rule` on a value that was sent.
    pub fn optional_with<T, U, E: Into<Problems>>(
        &mut self,
        field: &str,
        member: Member<T>,
        rule: impl FnOnce(T) -> Result<U, E>,
    ) -> Option<Option<U>> {
        match self.optional(field, member)? {
            None => Some(None),
            Some(value) => self.check(field, rule(value)).map(Some),
        }
    }

    /// A PATCH member that cannot be cleared: `None` when left out, the new value when sent; `null` is a problem.
    pub fn change<T>(&mut self, field: &str, member: Member<T>) -> Option<Option<T>> {
        match member {
            Member::Absent => Some(None),
            other => self.required(field, other).map(Some),
        }
    }

    /// [`Self::change`], then `rule` on a value that was sent.
    pub fn change_with<T, U, E: Into<Problems>>(
        &mut self,
        field: &str,
        member: Member<T>,
        rule: impl FnOnce(T) -> Result<U, E>,
    ) -> Option<Option<U>> {
        match self.change(field, member)? {
            None => Some(None),
            Some(value) => self.check(field, rule(value)).map(Some),
        }
    }

    /// A PATCH member that `null` clears.
    pub fn patch<T>(&mut self, field: &str, member: Member<T>) -> Option<Patch<T>> {
        match member {
            Member::Absent => Some(Patch::Unchanged),
            Member::Null => Some(Patch::Clear),
            Member::Value(value) => Some(Patch::Set(value)),
            Member::Invalid { path, message } => self.invalid(field, &path, message),
        }
    }

    /// Records each member the object does not define, with the members of `T` (its documented properties), as
    /// an unknown query parameter lists the known ones.
    pub fn unknown<T: PartialSchema>(&mut self, unknown: UnknownMembers) {
        if unknown.0.is_empty() {
            return;
        }
        let known = match T::schema() {
            RefOr::T(Schema::Object(object)) => object
                .properties
                .keys()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        };
        for name in unknown.0.keys() {
            let field = self.path_to(name);
            let message = if known.is_empty() {
                "is not a known field".to_owned()
            } else {
                format!("is not a known field; expected one of {known}")
            };
            self.errors.push(FieldError { field, message });
        }
    }

    /// Records a member that is not of its type, at the path inside it where it does not fit.
    fn invalid<T>(&mut self, field: &str, path: &str, message: String) -> Option<T> {
        let field = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{field}.{path}")
        };
        self.check(&field, Err(message))
    }

    /// Validates the members of an object nested under `field`.
    pub fn nested<T>(
        &mut self,
        field: &str,
        validate: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<T> {
        self.path.push(field.to_owned());
        let value = validate(self);
        self.path.pop();
        value
    }

    /// The built value when no rule was broken, else every broken rule.
    ///
    /// `build` sees the checked values as `Option`s, all `Some` when nothing was recorded.
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ValidationError> {
        if !self.errors.is_empty() {
            return Err(ValidationError::Fields(self.errors));
        }
        build().ok_or(ValidationError::Incomplete)
    }

    fn path_to(&self, field: &str) -> String {
        self.path
            .iter()
            .map(String::as_str)
            .chain([field])
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// What a text of the wrong length is told: the one wording, which the database's CHECK constraints answer with too.
pub fn length_rule(max: usize) -> String {
    format!("must be 1 to {max} characters")
}

/// A line of printable text of 1 to `max` characters, not blank, without control characters (Unicode Cc) or
/// format characters (Unicode Cf).
///
/// Format characters are invisible yet change how the text around them prints: bidirectional overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069) reorder it, zero-width characters (U+200B–U+200D, U+2060, U+FEFF) hide
/// breaks or join what should stay apart. On an envelope that misdirects mail, so the whole category is refused.
pub fn text(value: String, max: usize) -> Result<String, String> {
    let length = value.chars().count();
    if length == 0 || length > max {
        return Err(length_rule(max));
    }
    if value.trim().is_empty() {
        return Err("must not be blank".to_owned());
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    if let Some(format) = value.chars().find(|c| is_format(*c)) {
        return Err(format!(
            "must not contain invisible format characters (Unicode Cf), such as U+{:04X}",
            u32::from(format)
        ));
    }
    Ok(value)
}

/// Whether `c` is a format character (Unicode general category Cf).
fn is_format(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_counts_characters_not_bytes() {
        assert_eq!(text("ééé".to_owned(), 3), Ok("ééé".to_owned()));
        assert!(text("éééé".to_owned(), 3).is_err());
    }

    #[test]
    fn text_rejects_empty_blank_and_control_characters() {
        assert!(text(String::new(), 10).is_err());
        assert!(text("   ".to_owned(), 10).is_err());
        assert!(text("a\nb".to_owned(), 10).is_err());
    }

    #[test]
    fn text_rejects_format_characters_and_names_one() {
        for c in [
            '\u{202A}',
            '\u{202E}',
            '\u{2066}',
            '\u{2069}',
            '\u{200B}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{E0041}',
        ] {
            let message = text(format!("Anna{c} de Vries"), 200).expect_err("a format character");
            assert!(
                message.contains(&format!("U+{:04X}", u32::from(c))),
                "{message}"
            );
        }
        // Letters, marks and spaces of other scripts are not format characters.
        assert!(text("Zoë Ὀδυσσεύς שלום مرحبا नमस्ते".to_owned(), 200).is_ok());
    }

    #[test]
    fn nested_fields_get_dotted_paths() {
        let mut v = Validator::new();
        v.nested("recipient", |v| {
            v.check::<()>("postal_code", Err("bad".to_owned()))
        });
        v.check::<()>("send_date", Err("bad".to_owned()));
        let Err(ValidationError::Fields(errors)) = v.finish(|| Some(())) else {
            panic!("expected a validation error");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["recipient.postal_code", "send_date"]);
    }
}
