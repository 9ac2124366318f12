//! Extractors whose rejections are problem+json: JSON bodies, query strings and ids in the path.

use std::marker::PhantomData;

use axum::{
    extract::{FromRequest, FromRequestParts, Path, Request, rejection::PathRejection},
    http::{Method, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    domain::{input::id::parse_id, input::member::in_json_terms, input::validation::FieldError},
    http::body::{JsonBody, parse_json, read_body},
    http::error::{ApiError, Rejection},
    state::AppState,
};

/// A request body or query that still has to be checked against the API's rules.
pub trait Validate {
    /// What it is once every rule holds.
    type Valid;

    fn validate(self) -> Result<Self::Valid, ApiError>;
}

/// A JSON body, deserialized into `R` and validated into `R::Valid`.
///
/// 415 for a body that is not JSON, 413 over the limit, 400 for malformed JSON, 422 for the wrong shape or a broken
/// rule. A 422 lists every problem of the body (wrong types, missing and unknown members, broken rules) in the order
/// of the document: request types read each member on its own ([`Member`]), and their `validate` records every
/// problem before it fails.
///
/// [`Member`]: crate::domain::input::member::Member
pub struct ValidJson<R: Validate>(pub R::Valid);

impl<R> FromRequest<AppState> for ValidJson<R>
where
    R: Validate + DeserializeOwned,
{
    type Rejection = Rejection;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let value = match request.extensions().get::<JsonBody>() {
            Some(JsonBody(value)) => value.clone(),
            None => {
                let (parts, body) = request.into_parts();
                let bytes = read_body(Request::from_parts(parts.clone(), body), state).await?;
                parse_json(&parts.headers, &bytes)?
            }
        };
        let raw: R = deserialize(&value)?;
        match raw.validate() {
            Err(ApiError::Validation(mut errors)) => {
                in_document_order(&mut errors, &value);
                Err(ApiError::Validation(errors).into())
            }
            result => Ok(Self(result?)),
        }
    }
}

/// Sorts field errors by where their fields are in the document; members that were not sent (the missing ones)
/// come last, in the order they were found. Objects keep their members' order (serde_json's `preserve_order`).
fn in_document_order(errors: &mut [FieldError], document: &Value) {
    errors.sort_by_cached_key(|error| position(document, &error.field));
}

/// The index of each member along a dotted path, `usize::MAX` from the first member that is not in the document.
/// A member name may itself contain dots (merge variables such as `address.city`), so the longest name that the
/// object has is taken at each step.
fn position(document: &Value, field: &str) -> Vec<usize> {
    let segments: Vec<&str> = if field.is_empty() {
        Vec::new()
    } else {
        field.split('.').collect()
    };
    let mut indexes = Vec::new();
    let mut value = document;
    let mut rest = &segments[..];
    while !rest.is_empty() {
        let Value::Object(members) = value else {
            break;
        };
        let found = (1..=rest.len()).rev().find_map(|take| {
            let name = rest[..take].join(".");
            members
                .iter()
                .position(|(member, _)| *member == name)
                .map(|index| (take, index, &members[&name]))
        });
        let Some((take, index, member)) = found else {
            indexes.push(usize::MAX);
            break;
        };
        indexes.push(index);
        value = member;
        rest = &rest[take..];
    }
    indexes
}

/// Deserializes a parsed document, which must be an object, naming the field that does not fit.
pub fn deserialize<R: DeserializeOwned>(value: &Value) -> Result<R, ApiError> {
    // serde would also read a struct from an array of its fields; the API takes objects only.
    if !value.is_object() {
        return Err(ApiError::invalid_field("", "must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::Validation(vec![field_error(&path, &e.into_inner().to_string())])
    })
}

/// A serde error as a field error; missing and unknown members are named in the path.
fn field_error(path: &str, message: &str) -> FieldError {
    let path = if path == "." { "" } else { path };
    if let Some(member) = quoted_after(message, "missing field `") {
        return FieldError::new(join(path, member), "is required");
    }
    if let Some(member) = quoted_after(message, "unknown field `") {
        // The path of an unknown member already ends with it.
        let field = if path == member || path.ends_with(&format!(".{member}")) {
            path.to_owned()
        } else {
            join(path, member)
        };
        let expected = message
            .split_once(", expected")
            .map_or(String::new(), |(_, rest)| format!("; expected{rest}"));
        return FieldError::new(field, format!("is not a known field{expected}"));
    }
    FieldError::new(path, in_json_terms(message))
}

fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_owned()
    } else {
        format!("{path}.{member}")
    }
}

/// A query string, each parameter a string, deserialized into `R` and validated into `R::Valid`; 422 when it does not fit.
pub struct ValidQuery<R: Validate>(pub R::Valid);

impl<S, R> FromRequestParts<S> for ValidQuery<R>
where
    S: Send + Sync,
    R: Validate + DeserializeOwned,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let mut parameters = serde_json::Map::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if parameters
                .insert(name.to_string(), Value::String(value.into_owned()))
                .is_some()
            {
                return Err(ApiError::invalid_field(name, "is given more than once").into());
            }
        }
        let raw: R = deserialize(&Value::Object(parameters))?;
        Ok(Self(raw.validate()?))
    }
}

/// POST, PATCH and DELETE take no query parameters, so one sent anyway (`POST /v1/templates?dry_run=true`) is a 422
/// naming it, like an unknown body member, before anything runs: ignored, it would do what the client did not ask
/// for. `GET` routes that take parameters reject unknown ones themselves ([`ValidQuery`]).
pub async fn reject_query_on_writes(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let query = request.uri().query().unwrap_or_default();
    let errors: Vec<FieldError> = form_urlencoded::parse(query.as_bytes())
        .map(|(name, _)| {
            FieldError::new(
                name,
                format!(
                    "is not a known query parameter; {} takes none",
                    request.method()
                ),
            )
        })
        .collect();
    if errors.is_empty() {
        next.run(request).await
    } else {
        Rejection(ApiError::Validation(errors)).into_response()
    }
}

/// A kind of object that is addressed by id, for the 404 of an id that does not exist.
pub trait Resource {
    const NAME: &'static str;
}

/// The `{id}` of the path; any text that is not a UUID names no object, so it is a 404 like an unknown id.
pub struct PathId<R: Resource>(pub Uuid, pub PhantomData<R>);

impl<S, R> FromRequestParts<S> for PathId<R>
where
    S: Send + Sync,
    R: Resource,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let id = match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => id,
            // A segment that does not decode to UTF-8 (`%FF`) names no object either: keep it as it was sent.
            Err(PathRejection::FailedToDeserializePathParams(_)) => parts
                .uri
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned(),
            Err(rejection) => return Err(ApiError::internal(rejection.body_text()).into()),
        };
        match parse_id(&id) {
            Ok(uuid) => Ok(Self(uuid, PhantomData)),
            Err(_) => Err(ApiError::NotFound {
                resource: R::NAME,
                id,
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_follow_the_document_and_missing_members_come_last() {
        let document: Value = serde_json::from_str(
            r#"{"send_date": "x", "merge_variables": {"b": 1, "address.city": 2}, "recipient": {"zip": 1, "city": ""}}"#,
        )
        .unwrap();
        let mut errors: Vec<FieldError> = [
            "template_id",
            "recipient.city",
            "recipient.name",
            "merge_variables.address.city",
            "recipient.zip",
            "send_date",
            "merge_variables.b",
        ]
        .into_iter()
        .map(|field| FieldError::new(field, "bad"))
        .collect();
        in_document_order(&mut errors, &document);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "send_date",
                "merge_variables.b",
                "merge_variables.address.city",
                "recipient.zip",
                "recipient.city",
                "recipient.name",
                "template_id",
            ]
        );
    }

    #[test]
    fn missing_and_unknown_members_are_named() {
        let e = field_error(".", "missing field `name`");
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("name", "is required")
        );
        let e = field_error(
            "recipient.nmae",
            "unknown field `nmae`, expected one of `name`, `city`",
        );
        assert_eq!(e.field, "recipient.nmae");
        assert_eq!(
            e.message,
            "is not a known field; expected one of `name`, `city`"
        );
    }

    #[test]
    fn type_errors_keep_their_path() {
        let e = field_error(
            "merge_variables.city",
            "invalid type: integer `5`, expected a string",
        );
        assert_eq!(e.field, "merge_variables.city");
        assert_eq!(e.message, "must be a string, not a number");
    }
}
