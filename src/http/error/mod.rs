//! ApiError: every way a request can fail, and the RFC 9457 `application/problem+json` response it becomes.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    domain::{
        template::RenderError,
        validation::{FieldError, ValidationError},
    },
    http::conditional::EntityTag,
};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Declares the problem types, one row each, and everything derived from the rows: the enum, `ALL`, and the
/// accessors of each column.
macro_rules! problem_types {
    ($(
        $variant:ident {
            slug: $slug:literal,
            status: $status:ident,
            title: $title:literal,
            description: $description:literal $(,)?
        }
    ),* $(,)?) => {
        /// The kinds of problem the API reports; each has a stable `type` URI under `/problems/`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ProblemType {
            $($variant),*
        }

        impl ProblemType {
            /// Every problem type, for the documentation.
            pub const ALL: &'static [ProblemType] = &[$(Self::$variant),*];

            /// The last segment of the `type` URI.
            pub fn slug(self) -> &'static str {
                match self {
                    $(Self::$variant => $slug),*
                }
            }

            /// The HTTP status of every problem of this type.
            pub fn status(self) -> StatusCode {
                match self {
                    $(Self::$variant => StatusCode::$status),*
                }
            }

            /// A short summary, the same for every occurrence (RFC 9457, section 3.1.3).
            pub fn title(self) -> &'static str {
                match self {
                    $(Self::$variant => $title),*
                }
            }

            /// What the problem means and what a client should do about it, served at its `type` URI.
            pub fn description(self) -> &'static str {
                match self {
                    $(Self::$variant => $description),*
                }
            }
        }
    };
}

problem_types! {
    MalformedJson {
        slug: "malformed-json",
        status: BAD_REQUEST,
        title: "Malformed JSON",
        description: "The request body is not valid JSON (or is empty). Fix the syntax and send it again.",
    },
    DuplicateMemberName {
        slug: "duplicate-member-name",
        status: BAD_REQUEST,
        title: "Duplicate member name",
        description: "An object in the request body names the same member twice. JSON parsers disagree on which of the values counts (RFC 8259, section 4; I-JSON, RFC 7493, forbids it), so the request is refused rather than guessed at. Send each member once.",
    },
    UnreadableBody {
        slug: "unreadable-body",
        status: BAD_REQUEST,
        title: "Unreadable body",
        description: "The request body could not be read to its end (the connection broke or the body was malformed). Send it again.",
    },
    Unauthorized {
        slug: "unauthorized",
        status: UNAUTHORIZED,
        title: "Unauthorized",
        description: "The Authorization header is missing or does not carry a valid API key. Send `Authorization: Bearer <api_key>`.",
    },
    NotFound {
        slug: "not-found",
        status: NOT_FOUND,
        title: "Not found",
        description: "There is no such resource in your account, or no such route. Objects of other accounts are reported as not found.",
    },
    MethodNotAllowed {
        slug: "method-not-allowed",
        status: METHOD_NOT_ALLOWED,
        title: "Method not allowed",
        description: "The route exists but does not accept this HTTP method.",
    },
    RequestTimeout {
        slug: "request-timeout",
        status: REQUEST_TIMEOUT,
        title: "Request timeout",
        description: "The request was not received within the server's request timeout (its body came too slowly). It never ran; send it again.",
    },
    OutcomeUnknown {
        slug: "outcome-unknown",
        status: GATEWAY_TIMEOUT,
        title: "Outcome unknown",
        description: "The server could not learn the outcome of the request in time: it outlived the request timeout and goes on running to completion, or the database's acknowledgement of its commit was lost. It may or may not have been applied. Retry after `Retry-After` seconds with the same Idempotency-Key to get its outcome; a request without a key may have been applied, so sending it again blindly may apply it twice (for example, create a second order).",
    },
    TemplateInUse {
        slug: "template-in-use",
        status: CONFLICT,
        title: "Template in use",
        description: "The template cannot be deleted because orders refer to one of its versions. Orders keep the template version they print for their whole life.",
    },
    OrderNotModifiable {
        slug: "order-not-modifiable",
        status: CONFLICT,
        title: "Order can no longer be changed",
        description: "The order has left the `received` status (it is being processed, was sent or was cancelled), so it cannot be changed.",
    },
    PreconditionFailed {
        slug: "precondition-failed",
        status: PRECONDITION_FAILED,
        title: "Precondition failed",
        description: "The object changed since you read it: `If-Match` names none of its current `ETag`s (or `If-None-Match` names it). Nothing was written. GET the object for its current state and `ETag`, and send the change again based on it (with a new Idempotency-Key, since this answer is stored for the key you sent).",
    },
    PayloadTooLarge {
        slug: "payload-too-large",
        status: PAYLOAD_TOO_LARGE,
        title: "Payload too large",
        description: "The request body is larger than the server accepts.",
    },
    UnsupportedMediaType {
        slug: "unsupported-media-type",
        status: UNSUPPORTED_MEDIA_TYPE,
        title: "Unsupported media type",
        description: "A request with a body must send it as JSON, with `Content-Type: application/json` and no parameter but an optional `charset=utf-8`. Other types, `application/merge-patch+json` and other `+json` types included, and other charsets are not supported.",
    },
    ValidationFailed {
        slug: "validation-failed",
        status: UNPROCESSABLE_ENTITY,
        title: "Validation failed",
        description: "The body or query is well-formed JSON but breaks the rules of the API: `errors` lists each field and what is wrong with it. Nothing was written.",
    },
    TemplateNotFound {
        slug: "template-not-found",
        status: UNPROCESSABLE_ENTITY,
        title: "Template not found",
        description: "The order names a template that does not exist in your account. Create the template first or fix `template_id`.",
    },
    MissingMergeVariables {
        slug: "missing-merge-variables",
        status: UNPROCESSABLE_ENTITY,
        title: "Missing merge variables",
        description: "The template version the order prints (or the preview renders) has merge fields that `merge_variables` does not supply: `errors` lists each of them.",
    },
    InternalError {
        slug: "internal-error",
        status: INTERNAL_SERVER_ERROR,
        title: "Internal server error",
        description: "The server failed to handle the request (a bug). Its transaction rolled back, so nothing was written. When the request carried an Idempotency-Key, this answer is stored and replayed for that key.",
    },
    ServiceUnavailable {
        slug: "service-unavailable",
        status: SERVICE_UNAVAILABLE,
        title: "Service unavailable",
        description: "The database cannot serve the request right now: it is out of reach, shutting down, out of resources, or a statement ran past its timeout. The request's transaction rolled back, so nothing was written; retry after `Retry-After` seconds, with the same Idempotency-Key if you sent one.",
    },
    InvalidIdempotencyKey {
        slug: "invalid-idempotency-key",
        status: BAD_REQUEST,
        title: "Invalid idempotency key",
        description: "The Idempotency-Key header must be sent once, with 1 to 255 printable ASCII characters (a double-quoted value is read as an RFC 8941 string). Nothing was stored.",
    },
    IdempotencyKeyRequired {
        slug: "idempotency-key-required",
        status: BAD_REQUEST,
        title: "Idempotency key required",
        description: "This server requires an Idempotency-Key header on every POST and PATCH.",
    },
    IdempotencyKeyReused {
        slug: "idempotency-key-reused",
        status: UNPROCESSABLE_ENTITY,
        title: "Idempotency key reused",
        description: "The Idempotency-Key was first used for a different request (another method, route, id or body) and is still retained (24 hours by default). Nothing ran; use a new key for a new request.",
    },
    IdempotencyKeyInUse {
        slug: "idempotency-key-in-use",
        status: CONFLICT,
        title: "Idempotency key in use",
        description: "Another request with the same Idempotency-Key is still running. Nothing ran; retry after `Retry-After` seconds with the same key to get its answer.",
    },
    RateLimited {
        slug: "rate-limited",
        status: TOO_MANY_REQUESTS,
        title: "Too many requests",
        description: "Your account sent more requests than its rate limit allows (`RateLimit-Policy`: `q` requests at once, refilled over `w` seconds). Nothing ran and nothing was stored, not even under an Idempotency-Key; retry after `Retry-After` seconds, with the same key if you sent one. Other accounts are not affected.",
    },
    ResourceBusy {
        slug: "resource-busy",
        status: CONFLICT,
        title: "Resource busy",
        description: "Another request held the object for longer than the server waits, or the database broke a deadlock or a serialization conflict with another request by rolling this one back. Nothing was written; retry after `Retry-After` seconds.",
    },
    InvalidPrecondition {
        slug: "invalid-precondition",
        status: BAD_REQUEST,
        title: "Invalid precondition",
        description: "`If-Match` or `If-None-Match` is neither `*` nor a comma-separated list of entity tags (`\"3\"`, `W/\"3\"`, as the `ETag` header sends them; RFC 9110, section 8.8.3), so it cannot be evaluated. Nothing ran and nothing was stored; send the tag as `ETag` gave it, quotes included.",
    },
}

impl ProblemType {
    /// The `type` member of a problem of this kind: a reference resolved against the API's own origin.
    pub fn uri(self) -> String {
        format!("/problems/{}", self.slug())
    }

    /// The problem type whose slug this is.
    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.slug() == slug)
    }
}

/// An RFC 9457 problem document, the body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "/problems/validation-failed",
    "title": "Validation failed",
    "status": 422,
    "detail": "The request has 1 invalid field.",
    "errors": [{"field": "recipient.postal_code", "message": "must be 1 to 20 characters"}]
}))]
pub struct Problem {
    /// A URI reference that names the kind of problem; `GET` it for a description.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem, the same for every occurrence.
    pub title: String,
    /// The HTTP status code.
    #[schema(minimum = 100, maximum = 599)]
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// Each invalid field, by its dotted path in the request, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

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
    ///
    /// A passing failure is not stored: the database out of reach, out of resources or past a statement timeout,
    /// the key or a row held too long by another request, a deadlock or serialization conflict the database broke
    /// by rolling this request back, or the account's rate limit used up. Everything the request did rolled back, so a retry with the same key may run
    /// it. Nor is an unknown outcome: the request may still commit, and its key then stores that outcome.
    ///
    /// Nor is `validation-failed`, wherever it is found: before the endpoint runs, or inside it as a violated CHECK
    /// constraint (at UTC midnight, say, when a send date passed the service's check and fails the database's).
    /// It judges the request's content, and a key that stored it could never serve the corrected request, whose
    /// fingerprint differs. The 422s that depend on other objects (`template-not-found`,
    /// `missing-merge-variables`) are outcomes of the endpoint, and stored.
    pub fn is_stored(&self) -> bool {
        !matches!(
            self,
            Self::DatabaseUnavailable(_)
                | Self::IdempotencyKeyInUse
                | Self::ResourceBusy
                | Self::OutcomeUnknown(_)
                | Self::Validation(_)
                | Self::RateLimited { .. }
        )
    }

    /// The seconds a client should wait before it sends the same request again, for a failure that waiting gets
    /// past: the `Retry-After` header (RFC 9110, section 10.2.3).
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::DatabaseUnavailable(_)
            | Self::IdempotencyKeyInUse
            | Self::ResourceBusy
            | Self::OutcomeUnknown(_) => Some(1),

            Self::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The answer to a request that outlived the request timeout after it started to run: it runs on to
    /// completion (`api::detached`), so whether it is applied is not known yet.
    pub fn still_running(seconds: u64) -> Self {
        Self::OutcomeUnknown(format!(
            "The request did not finish within {seconds} seconds and is still running; it may or may not be \
             applied. Retry with the same Idempotency-Key to learn its outcome; without a key, a blind retry may \
             apply it twice."
        ))
    }

    /// A failed COMMIT. When the connection failed, the database may have committed before the acknowledgement
    /// was lost, so the outcome is unknown; any other failure of a COMMIT rolled the transaction back.
    pub fn from_commit(error: sqlx::Error) -> Self {
        match Self::from(error) {
            Self::DatabaseUnavailable(source) => {
                tracing::warn!(error = %source, "the commit's acknowledgement was lost");
                Self::OutcomeUnknown(
                    "The connection to the database failed while the request committed; it may or may not be \
                     applied. Retry with the same Idempotency-Key to learn its outcome; without a key, a blind \
                     retry may apply it twice."
                        .to_owned(),
                )
            }
            error => error,
        }
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

impl From<RenderError> for ApiError {
    fn from(error: RenderError) -> Self {
        match error {
            RenderError::MissingMergeVariables(missing) => Self::MissingMergeVariables { missing },
            RenderError::Malformed(_) => Self::internal(error),
        }
    }
}

/// The one place where database errors become problems: by SQLSTATE, then by the name of a violated constraint.
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if is_unreachable(&error) {
            return Self::DatabaseUnavailable(error);
        }
        let Some(db) = error.as_database_error() else {
            return Self::Internal(Box::new(error));
        };
        let passing = db.code().as_deref().and_then(passing_failure);
        match passing {
            Some(Passing::Unavailable) => return Self::DatabaseUnavailable(error),
            Some(Passing::Busy) => return Self::ResourceBusy,
            None => {}
        }
        if let Some(&(_, field, message)) = crate::db::violated_constraint(&error)
            .and_then(|name| CHECKS.iter().find(|(constraint, ..)| *constraint == name))
        {
            return Self::invalid_field(field, message);
        }
        Self::Internal(Box::new(error))
    }
}

/// A database failure after which nothing was written and the same request may simply be sent again: the
/// database rolled the request's transaction back for a reason of the moment, not for what the request asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Passing {
    /// The database cannot serve the request now (503).
    Unavailable,
    /// Another request held a row too long, or a conflict with one was broken by rolling this one back (409).
    Busy,
}

/// The passing failure a SQLSTATE (PostgreSQL, Appendix A) stands for; `None` for a failure that is the request's
/// outcome.
fn passing_failure(code: &str) -> Option<Passing> {
    match code {
        // Class 08: connection exception.
        _ if code.starts_with("08") => Some(Passing::Unavailable),
        // Class 53, insufficient resources: disk full, out of memory, too many connections.
        _ if code.starts_with("53") => Some(Passing::Unavailable),
        // query_canceled: `statement_timeout` (ours, or one an operator set on the database or role) or a cancel
        // request; admin_shutdown, crash_shutdown, cannot_connect_now; idle_session_timeout.
        "57014" | "57P01" | "57P02" | "57P03" | "57P05" => Some(Passing::Unavailable),
        // idle_in_transaction_session_timeout ended the session; its transaction rolled back.
        "25P03" => Some(Passing::Unavailable),
        // io_error: the server could not read or write a file.
        "58030" => Some(Passing::Unavailable),
        // Class 40, transaction rollback: serialization_failure, deadlock_detected and the like.
        _ if code.starts_with("40") => Some(Passing::Busy),
        // lock_not_available: `lock_timeout` ran out.
        "55P03" => Some(Passing::Busy),
        _ => None,
    }
}

/// True when the database could not be reached at all, before any statement ran.
fn is_unreachable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    )
}

/// The CHECK constraints of `migrations/`, each with the field and rule it backs: the database is the last line of
/// validation, and a violation is the client's 422 like the handler's own check.
const CHECKS: &[(&str, &str, &str)] = &[
    (
        "template_versions_name_length",
        "name",
        "must be 1 to 200 characters",
    ),
    (
        "template_versions_format_known",
        "format",
        "is not a known format",
    ),
    (
        "template_versions_content_size",
        "content",
        "must be 1 to 524288 bytes",
    ),
    (
        "templates_metadata_is_metadata",
        "metadata",
        "must have at most 20 keys of 1 to 40 characters with string values of at most 500 characters",
    ),
    (
        "orders_metadata_is_metadata",
        "metadata",
        "must have at most 20 keys of 1 to 40 characters with string values of at most 500 characters",
    ),
    (
        "orders_recipient_is_address",
        "recipient",
        "is not a valid address",
    ),
    (
        "orders_sender_is_address",
        "sender",
        "is not a valid address",
    ),
    (
        "orders_merge_variables_is_string_map",
        "merge_variables",
        "must map names to strings",
    ),
    (
        "orders_send_date_not_before_creation",
        "send_date",
        "must not be in the past",
    ),
];

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
    fn sqlstates_of_passing_failures() {
        assert_eq!(passing_failure("08006"), Some(Passing::Unavailable));
        assert_eq!(passing_failure("57P01"), Some(Passing::Unavailable));
        assert_eq!(passing_failure("55P03"), Some(Passing::Busy));
        assert_eq!(passing_failure("40001"), Some(Passing::Busy));
        assert_eq!(passing_failure("40P01"), Some(Passing::Busy));
        assert_eq!(passing_failure("57014"), Some(Passing::Unavailable));
        assert_eq!(passing_failure("53100"), Some(Passing::Unavailable));
        assert_eq!(passing_failure("53300"), Some(Passing::Unavailable));
        assert_eq!(passing_failure("25P03"), Some(Passing::Unavailable));
        // check_violation and unique_violation are outcomes of the request.
        assert_eq!(passing_failure("23514"), None);
        assert_eq!(passing_failure("23505"), None);
        // undefined_table is a bug, not a passing condition.
        assert_eq!(passing_failure("42P01"), None);
    }

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

    #[test]
    fn a_lost_commit_acknowledgement_is_an_unknown_outcome() {
        let lost =
            ApiError::from_commit(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()));
        assert_eq!(lost.problem_type(), ProblemType::OutcomeUnknown);
        assert_eq!(lost.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(!lost.is_stored());
        assert_eq!(lost.retry_after(), Some(1));
    }
}
