//! ApiError: every way a request can fail, and the RFC 9457 `application/problem+json` response it becomes.

mod database;
mod problem_type;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

pub use problem_type::{Problem, ProblemType, Retry};

use crate::{
    domain::{
        batch::BatchError,
        csv::Malformed,
        input::validation::{FieldError, ValidationError},
        template::RenderError,
    },
    http::conditional::EntityTag,
};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Marks the response to a request that was rejected before its endpoint ran (a bad body, query or id): it is no
/// outcome of the endpoint, so an idempotency key does not store it, and the corrected request may use the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRun;

/// Marks the response to a failure its idempotency key does not store (see [`ApiError::is_stored`]): a passing
/// failure, an unknown outcome, or a request whose content broke a rule. Everything the request did rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotStored;

/// An error found while reading the request, before its endpoint runs: the rejection of every extractor.
#[derive(Debug)]
pub struct Rejection(pub ApiError);

impl From<ApiError> for Rejection {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response.extensions_mut().insert(NotRun);
        response
    }
}

/// Why a request got no result; turns into a problem+json response.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    DuplicateMemberName(String),
    #[error("The request body could not be read: {0}.")]
    UnreadableBody(String),
    #[error("{}", .0.message())]
    Unauthorized(Credentials),
    #[error("No such {resource}: '{id}'.")]
    NotFound { resource: &'static str, id: String },
    /// Unknown, expired, of another account, or not a key at all; the key is not repeated, as it may be personal data.
    #[error("No such idempotency key in this account: it was never stored, or it expired.")]
    IdempotencyKeyNotFound,
    #[error("No route for {0}.")]
    RouteNotFound(String),
    #[error("{method} is not allowed on this route.")]
    MethodNotAllowed { method: String },
    #[error("The request was not received within {seconds} seconds; it never ran.")]
    RequestTimeout { seconds: u64 },
    #[error("{0}")]
    OutcomeUnknown(String),
    #[error("Template '{id}' is used by {orders} order(s) and cannot be deleted.")]
    TemplateInUse { id: uuid::Uuid, orders: i64 },
    #[error("Order '{id}' is {status} and can only be changed while it is received.")]
    OrderNotModifiable { id: uuid::Uuid, status: String },
    /// With the object's current tag, which the answer carries as `ETag`.
    #[error("The object's current entity tag does not satisfy If-Match or If-None-Match.")]
    PreconditionFailed(EntityTag),
    #[error("The request body is larger than {limit} bytes.")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("The request has {} invalid field(s).", .0.len())]
    Validation(Vec<FieldError>),
    /// A batch file whose records cannot be told apart: the record and the line where it goes wrong.
    #[error("The file cannot be split into records: {}.", .0.reason)]
    MalformedFile(Malformed),
    #[error("No template '{id}' exists in this account.")]
    TemplateNotFound { id: uuid::Uuid },
    #[error("The template needs merge variables that are missing: {}.", .missing.join(", "))]
    MissingMergeVariables { missing: Vec<String> },
    #[error("Invalid Idempotency-Key: {0}.")]
    InvalidIdempotencyKey(String),
    #[error("Send an Idempotency-Key header with every POST and PATCH.")]
    IdempotencyKeyRequired,
    #[error(
        "This Idempotency-Key was used for a different request; use a new key for a new request."
    )]
    IdempotencyKeyReused,
    #[error(
        "A request with this Idempotency-Key is still running; retry with the same key to get its answer."
    )]
    IdempotencyKeyInUse,
    #[error("Another request holds this object; retry shortly.")]
    ResourceBusy,
    #[error("Your account's rate limit is used up; retry after {retry_after} second(s).")]
    RateLimited { retry_after: u32 },
    #[error("The database is unavailable.")]
    DatabaseUnavailable(#[source] sqlx::Error),
    #[error("An internal error occurred.")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("{0}")]
    InvalidPrecondition(String),
}

/// What was wrong with the credentials of a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    Missing,
    Invalid,
}

impl Credentials {
    fn message(self) -> &'static str {
        match self {
            Self::Missing => "Send your API key as `Authorization: Bearer <api_key>`.",
            Self::Invalid => "The API key is not valid.",
        }
    }
}

impl ApiError {
    /// A validation failure of one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(error.into())
    }

    pub fn problem_type(&self) -> ProblemType {
        match self {
            Self::MalformedJson(_) => ProblemType::MalformedJson,
            Self::DuplicateMemberName(_) => ProblemType::DuplicateMemberName,
            Self::UnreadableBody(_) => ProblemType::UnreadableBody,
            Self::Unauthorized(_) => ProblemType::Unauthorized,
            Self::NotFound { .. } | Self::RouteNotFound(_) | Self::IdempotencyKeyNotFound => {
                ProblemType::NotFound
            }
            Self::MethodNotAllowed { .. } => ProblemType::MethodNotAllowed,
            Self::RequestTimeout { .. } => ProblemType::RequestTimeout,
            Self::OutcomeUnknown(_) => ProblemType::OutcomeUnknown,
            Self::TemplateInUse { .. } => ProblemType::TemplateInUse,
            Self::OrderNotModifiable { .. } => ProblemType::OrderNotModifiable,
            Self::PreconditionFailed(_) => ProblemType::PreconditionFailed,
            Self::PayloadTooLarge { .. } => ProblemType::PayloadTooLarge,
            Self::UnsupportedMediaType(_) => ProblemType::UnsupportedMediaType,
            Self::Validation(_) => ProblemType::ValidationFailed,
            Self::MalformedFile(_) => ProblemType::MalformedFile,
            Self::TemplateNotFound { .. } => ProblemType::TemplateNotFound,
            Self::MissingMergeVariables { .. } => ProblemType::MissingMergeVariables,
            Self::InvalidIdempotencyKey(_) => ProblemType::InvalidIdempotencyKey,
            Self::IdempotencyKeyRequired => ProblemType::IdempotencyKeyRequired,
            Self::IdempotencyKeyReused => ProblemType::IdempotencyKeyReused,
            Self::IdempotencyKeyInUse => ProblemType::IdempotencyKeyInUse,
            Self::ResourceBusy => ProblemType::ResourceBusy,
            Self::RateLimited { .. } => ProblemType::RateLimited,
            Self::DatabaseUnavailable(_) => ProblemType::ServiceUnavailable,
            Self::Internal(_) => ProblemType::InternalError,
            Self::InvalidPrecondition(_) => ProblemType::InvalidPrecondition,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.problem_type().status()
    }

    /// Whether an idempotency key stores this failure as the outcome of its request, to replay it for every retry.
    pub fn is_stored(&self) -> bool {
        self.problem_type().is_stored()
    }

    /// The seconds a client should wait before it sends the same request again: the `Retry-After` header.
    pub fn retry_after(&self) -> Option<u32> {
        match (self.problem_type().retry(), self) {
            (Retry::After(seconds), _) => Some(seconds),
            (Retry::Given, Self::RateLimited { retry_after }) => Some(*retry_after),
            (Retry::Given | Retry::Never, _) => None,
        }
    }

    /// The answer to a request that outlived the request timeout after it started to run: it runs on to
    /// completion (`http::detached`), so whether it is applied is not known yet.
    pub fn still_running(seconds: u64) -> Self {
        Self::OutcomeUnknown(format!(
            "The request did not finish within {seconds} seconds and is still running; it may or may not be \
             applied. Retry with the same Idempotency-Key to learn its outcome; without a key, a blind retry may \
             apply it twice."
        ))
    }

    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Self::Validation(errors) => errors.clone(),
            Self::TemplateNotFound { .. } => vec![FieldError::new(
                "template_id",
                "no such template in this account",
            )],
            Self::MissingMergeVariables { missing } => missing
                .iter()
                .map(|name| {
                    FieldError::new(
                        format!("merge_variables.{name}"),
                        "required by the template",
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The problem document for this error.
    pub fn to_problem(&self) -> Problem {
        let kind = self.problem_type();
        Problem {
            kind: kind.uri(),
            title: kind.title().to_owned(),
            status: kind.status().as_u16(),
            detail: self.to_string(),
            errors: self.field_errors(),
            record: match self {
                Self::MalformedFile(malformed) => Some(malformed.record),
                _ => None,
            },
            line: match self {
                Self::MalformedFile(malformed) => Some(malformed.line),
                _ => None,
            },
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        match error {
            ValidationError::Fields(errors) => Self::Validation(errors),
            ValidationError::Incomplete => Self::internal(error),
        }
    }
}

impl From<BatchError> for ApiError {
    fn from(error: BatchError) -> Self {
        match error {
            BatchError::Fields(errors) => Self::Validation(errors),
            BatchError::Malformed(malformed) => Self::MalformedFile(malformed),
        }
    }
}

impl From<RenderError> for ApiError {
    fn from(error: RenderError) -> Self {
        match error {
            RenderError::MissingMergeVariables(missing) => Self::MissingMergeVariables { missing },
            RenderError::Malformed(_) => Self::internal(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(source) => tracing::error!(error = %source, "request failed"),
            Self::DatabaseUnavailable(source) => {
                tracing::warn!(error = %source, "database unavailable")
            }
            Self::OutcomeUnknown(detail) => tracing::warn!(%detail, "outcome unknown"),
            _ => tracing::debug!(status = status.as_u16(), detail = %self, "request rejected"),
        }
        let body = serde_json::to_vec(&self.to_problem()).unwrap_or_default();
        let mut response = (status, body).into_response();
        if !self.is_stored() {
            response.extensions_mut().insert(NotStored);
        }
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match self {
            Self::Unauthorized(Credentials::Missing) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Unauthorized(Credentials::Invalid) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            Self::PreconditionFailed(current) => {
                headers.insert(header::ETAG, current.header_value());
            }
            _ => {}
        }
        if let Some(seconds) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_failures_are_not_stored() {
        let unavailable = ApiError::from(sqlx::Error::PoolTimedOut);
        assert!(!unavailable.is_stored());
        assert_eq!(unavailable.retry_after(), Some(1));
        assert!(!ApiError::invalid_field("send_date", "must not be in the past").is_stored());
        let bug = ApiError::internal("a bug");
        assert!(bug.is_stored());
        assert_eq!(bug.retry_after(), None);
    }

    /// One error of every problem type, with its status, whether its key stores it, and its `Retry-After`.
    fn every_kind_of_error() -> Vec<(ApiError, u16, bool, Option<u32>)> {
        let id = uuid::Uuid::nil();
        vec![
            (ApiError::MalformedJson("m".into()), 400, true, None),
            (ApiError::DuplicateMemberName("d".into()), 400, true, None),
            (ApiError::UnreadableBody("u".into()), 400, true, None),
            (
                ApiError::Unauthorized(Credentials::Missing),
                401,
                true,
                None,
            ),
            (
                ApiError::Unauthorized(Credentials::Invalid),
                401,
                true,
                None,
            ),
            (
                ApiError::NotFound {
                    resource: "order",
                    id: "x".into(),
                },
                404,
                true,
                None,
            ),
            (ApiError::IdempotencyKeyNotFound, 404, true, None),
            (ApiError::RouteNotFound("/x".into()), 404, true, None),
            (
                ApiError::MethodNotAllowed {
                    method: "PUT".into(),
                },
                405,
                true,
                None,
            ),
            (ApiError::RequestTimeout { seconds: 30 }, 408, true, None),
            (ApiError::still_running(30), 504, false, Some(1)),
            (ApiError::TemplateInUse { id, orders: 1 }, 409, true, None),
            (
                ApiError::OrderNotModifiable {
                    id,
                    status: "sent".into(),
                },
                409,
                true,
                None,
            ),
            (
                ApiError::PreconditionFailed(EntityTag::first()),
                412,
                true,
                None,
            ),
            (ApiError::InvalidPrecondition("p".into()), 400, false, None),
            (ApiError::PayloadTooLarge { limit: 1 }, 413, true, None),
            (ApiError::UnsupportedMediaType("t".into()), 415, true, None),
            (ApiError::invalid_field("name", "n"), 422, false, None),
            (ApiError::TemplateNotFound { id }, 422, true, None),
            (
                ApiError::MissingMergeVariables {
                    missing: vec!["city".into()],
                },
                422,
                true,
                None,
            ),
            (
                ApiError::MalformedFile(Malformed {
                    record: 2,
                    line: 3,
                    reason: "a quote never closes".into(),
                }),
                422,
                false,
                None,
            ),
            (ApiError::internal("a bug"), 500, true, None),
            (
                ApiError::from(sqlx::Error::PoolTimedOut),
                503,
                false,
                Some(1),
            ),
            (ApiError::InvalidIdempotencyKey("k".into()), 400, true, None),
            (ApiError::IdempotencyKeyRequired, 400, true, None),
            (ApiError::IdempotencyKeyReused, 422, true, None),
            (ApiError::IdempotencyKeyInUse, 409, false, Some(1)),
            (
                ApiError::RateLimited { retry_after: 7 },
                429,
                false,
                Some(7),
            ),
            (ApiError::ResourceBusy, 409, false, Some(1)),
        ]
    }

    #[tokio::test]
    async fn every_problem_type_answers_with_its_status_stored_ness_and_retry_after() {
        let errors = every_kind_of_error();
        for kind in ProblemType::ALL {
            assert!(
                errors
                    .iter()
                    .any(|(error, ..)| error.problem_type() == *kind),
                "{kind:?} has no sample"
            );
        }
        for (error, status, stored, retry_after) in errors {
            let case = format!("{error:?}");
            assert_eq!(error.status().as_u16(), status, "{case}");
            assert_eq!(error.is_stored(), stored, "{case}");
            assert_eq!(error.retry_after(), retry_after, "{case}");
            let problem = serde_json::to_vec(&error.to_problem()).unwrap();
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status, "{case}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
            assert_eq!(
                response.extensions().get::<NotStored>().is_none(),
                stored,
                "{case}"
            );
            assert_eq!(
                response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .map(|value| value.to_str().unwrap().parse::<u32>().unwrap()),
                retry_after,
                "{case}"
            );
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(body, problem, "{case}");
        }
    }
}
