//! Conditional requests (RFC 9110, section 13): the strong entity tag of an object, `If-Match` on PATCH and DELETE,
//! and `If-None-Match` on GET.

use std::borrow::Cow;

use axum::{
    Json,
    extract::FromRequestParts,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    domain::{
        order::Order,
        template::{Template, TemplateVersion},
    },
    http::error::{ApiError, Rejection},
};

/// A strong entity tag (RFC 9110, section 8.8.3): the version of an object, which every change counts up, written
/// as a quoted decimal number, e.g. `"3"`. Equal tags of one object mean byte-identical JSON bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag(i32);

impl EntityTag {
    /// The tag as a field value: `"<version>"`.
    pub fn header_value(self) -> HeaderValue {
        // Digits between quotes are always a valid field value; the fallback is never taken.
        HeaderValue::try_from(format!("\"{}\"", self.0))
            .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
    }

    /// The tag of an object's first version, for the documentation's examples.
    pub fn first() -> Self {
        Self(1)
    }

    /// The opaque part, between the quotes.
    fn opaque(self) -> String {
        self.0.to_string()
    }
}

/// An object that carries an entity tag; only `tagged!` implements it, which lists the type's schema too.
pub trait Tagged: sealed::Declared {
    fn entity_tag(&self) -> EntityTag;
}

mod sealed {
    /// Implemented by `tagged!` alone, so that no type is tagged without its schema in [`super::tagged_schemas`].
    pub trait Declared {}
}

/// Implements [`Tagged`] for each type, its tag the named version field, and lists the types' schemas in
/// `tagged_schemas`: one declaration, so that the OpenAPI document gives every tagged answer its `ETag`.
macro_rules! tagged {
    ($($(#[$doc:meta])* $type:ty => $version:ident),* $(,)?) => {
        $(
            impl sealed::Declared for $type {}

            impl Tagged for $type {
                $(#[$doc])*
                fn entity_tag(&self) -> EntityTag {
                    EntityTag(self.$version)
                }
            }
        )*

        /// The schema names of the tagged types, whose answers carry an `ETag`.
        pub fn tagged_schemas() -> Vec<Cow<'static, str>> {
            vec![$(<$type as ToSchema>::name()),*]
        }
    };
}

tagged! {
    /// A template's tag is its row version, which every change counts up: a new version, and a change of metadata
    /// alone, which keeps `version`.
    Template => row_version,
    /// A version is written once and never changed, so its number names one body for good.
    TemplateVersion => version,
    /// An order's tag is its row version, which every change of the order counts up.
    Order => row_version,
}

/// One member of an `If-Match` or `If-None-Match` list (RFC 9110, section 8.8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tag {
    Strong(String),
    Weak(String),
}

/// The condition of one precondition header: `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    Any,
    Tags(Vec<Tag>),
}

impl Condition {
    /// The field's condition, `None` when the request does not send it, or why it is neither `*` nor a list of
    /// entity tags. Several field lines form one list.
    fn read(headers: &HeaderMap, name: &HeaderName) -> Result<Option<Self>, ApiError> {
        let mut values = headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            return Ok(None);
        }
        let invalid = |member: &str| {
            ApiError::InvalidPrecondition(format!(
                "{name} must be `*` or a list of entity tags such as `\"3\"` or `W/\"3\"`; `{member}` is not one."
            ))
        };
        let mut members = Vec::new();
        for value in values {
            let value = value.to_str().map_err(|_| invalid("(not visible ASCII)"))?;
            members.extend(split_list(value));
        }
        if members == ["*"] {
            return Ok(Some(Self::Any));
        }
        members
            .into_iter()
            .map(|member| parse_tag(member).ok_or_else(|| invalid(member)))
            .collect::<Result<_, _>>()
            .map(|tags| Some(Self::Tags(tags)))
    }

    /// The strong comparison of `If-Match` (RFC 9110, section 13.1.1): a weak tag never matches.
    fn matches_strongly(&self, current: EntityTag) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags
                .iter()
                .any(|tag| matches!(tag, Tag::Strong(opaque) if *opaque == current.opaque())),
        }
    }

    /// The weak comparison of `If-None-Match` (RFC 9110, section 13.1.2): `W/"3"` matches `"3"`.
    fn matches_weakly(&self, current: EntityTag) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|tag| match tag {
                Tag::Strong(opaque) | Tag::Weak(opaque) => *opaque == current.opaque(),
            }),
        }
    }
}

/// The members of a comma-separated list of entity tags, trimmed, empty ones left out; a comma inside quotes
/// belongs to its tag.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut members = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                members.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    members.push(value[start..].trim());
    members.retain(|member| !member.is_empty());
    members
}

/// An entity tag, `"x"` or `W/"x"`, whose opaque part holds only the characters RFC 9110 allows (visible ASCII
/// but `"`); `None` for anything else.
fn parse_tag(member: &str) -> Option<Tag> {
    let (weak, quoted) = match member.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, member),
    };
    let opaque = quoted
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|opaque| {
            opaque
                .bytes()
                .all(|byte| byte == 0x21 || (0x23..=0x7E).contains(&byte))
        })?;
    Some(if weak {
        Tag::Weak(opaque.to_owned())
    } else {
        Tag::Strong(opaque.to_owned())
    })
}

/// The preconditions of a request: its `If-Match` and `If-None-Match` fields.
///
/// A handler evaluates them against the object's current tag once it holds the object (locked, for a change), in
/// the order of RFC 9110, section 13.2.2: `If-Match` first. A request for an object that does not exist is a 404,
/// whatever its preconditions say. A field that is neither `*` nor a list of entity tags is a 400 before anything
/// runs: read as matching nothing it would be a 412 that no change of the object could pass.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    if_match: Option<Condition>,
    if_none_match: Option<Condition>,
}

impl<S: Send + Sync> FromRequestParts<S> for Preconditions {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers)?)
    }
}

impl Preconditions {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        Ok(Self {
            if_match: Condition::read(headers, &header::IF_MATCH)?,
            if_none_match: Condition::read(headers, &header::IF_NONE_MATCH)?,
        })
    }

    /// Whether the request sends `If-Match` or `If-None-Match`.
    pub fn is_given(&self) -> bool {
        self.if_match.is_some() || self.if_none_match.is_some()
    }

    /// For a change (PATCH, DELETE): 412 when `If-Match` names no current tag, or `If-None-Match` names it.
    pub fn check_change(&self, current: EntityTag) -> Result<(), ApiError> {
        let fails_if_match = self
            .if_match
            .as_ref()
            .is_some_and(|condition| !condition.matches_strongly(current));
        let fails_if_none_match = self
            .if_none_match
            .as_ref()
            .is_some_and(|condition| condition.matches_weakly(current));
        if fails_if_match || fails_if_none_match {
            return Err(ApiError::PreconditionFailed(current));
        }
        Ok(())
    }

    /// For a read (GET): 412 when `If-Match` names no current tag; otherwise `Some(304)` when `If-None-Match`
    /// names the current tag, so the client's copy is current, and `None` to send the object.
    pub fn check_read(&self, current: EntityTag) -> Result<Option<Response>, ApiError> {
        if self
            .if_match
            .as_ref()
            .is_some_and(|condition| !condition.matches_strongly(current))
        {
            return Err(ApiError::PreconditionFailed(current));
        }
        let not_modified = self
            .if_none_match
            .as_ref()
            .is_some_and(|condition| condition.matches_weakly(current));
        Ok(not_modified.then(|| {
            (
                StatusCode::NOT_MODIFIED,
                [(header::ETAG, current.header_value())],
            )
                .into_response()
        }))
    }
}

/// A 200 answer with one object and its `ETag`.
pub struct Current<T>(pub T);

impl<T: Serialize + Tagged> IntoResponse for Current<T> {
    fn into_response(self) -> Response {
        let tag = self.0.entity_tag();
        ([(header::ETAG, tag.header_value())], Json(self.0)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preconditions(if_match: Option<&str>, if_none_match: Option<&str>) -> Preconditions {
        let mut headers = HeaderMap::new();
        if let Some(value) = if_match {
            headers.insert(header::IF_MATCH, value.parse().unwrap());
        }
        if let Some(value) = if_none_match {
            headers.insert(header::IF_NONE_MATCH, value.parse().unwrap());
        }
        Preconditions::from_headers(&headers).unwrap()
    }

    #[test]
    fn the_tag_is_the_quoted_version() {
        assert_eq!(EntityTag(3).header_value(), "\"3\"");
    }

    #[test]
    fn if_match_compares_strongly() {
        let current = EntityTag(3);
        for matching in ["\"3\"", "*", "\"1\", \"3\"", "\"a,b\", \"3\""] {
            assert!(
                preconditions(Some(matching), None)
                    .check_change(current)
                    .is_ok(),
                "{matching}"
            );
        }
        for failing in ["\"2\"", "W/\"3\"", "", "\"a,b\""] {
            assert!(
                matches!(
                    preconditions(Some(failing), None).check_change(current),
                    Err(ApiError::PreconditionFailed(_))
                ),
                "{failing}"
            );
        }
        assert!(preconditions(None, None).check_change(current).is_ok());
    }

    #[test]
    fn if_none_match_compares_weakly_and_answers_304_on_a_read() {
        let current = EntityTag(3);
        for matching in ["\"3\"", "W/\"3\"", "*", "\"2\", W/\"3\""] {
            let answer = preconditions(None, Some(matching)).check_read(current);
            let response = answer.unwrap().expect("a 304");
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
            assert_eq!(response.headers()[header::ETAG], "\"3\"");
            assert!(matches!(
                preconditions(None, Some(matching)).check_change(current),
                Err(ApiError::PreconditionFailed(_))
            ));
        }
        assert!(
            preconditions(None, Some("\"2\""))
                .check_read(current)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_field_that_is_not_a_list_of_entity_tags_is_refused() {
        for invalid in [
            "3",
            "\"3",
            "W/3",
            "\"3\" 4",
            "*, \"3\"",
            "\"a b\"",
            "w/\"3\"",
            "\"3\"\"4\"",
        ] {
            for name in [header::IF_MATCH, header::IF_NONE_MATCH] {
                let mut headers = HeaderMap::new();
                headers.insert(name.clone(), invalid.parse().unwrap());
                assert!(
                    matches!(
                        Preconditions::from_headers(&headers),
                        Err(ApiError::InvalidPrecondition(_))
                    ),
                    "{name}: {invalid}"
                );
            }
        }
    }

    #[test]
    fn a_412_names_the_current_tag() {
        assert!(matches!(
            preconditions(Some("\"2\""), None).check_change(EntityTag(3)),
            Err(ApiError::PreconditionFailed(EntityTag(3)))
        ));
    }

    #[test]
    fn if_match_is_evaluated_before_if_none_match() {
        assert!(matches!(
            preconditions(Some("\"2\""), Some("\"3\"")).check_read(EntityTag(3)),
            Err(ApiError::PreconditionFailed(_))
        ));
    }
}
