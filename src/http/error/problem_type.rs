//! The problem types, one row each (status, title, whether a key stores it, when to retry), and `Problem`.

use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiError;
use crate::domain::input::validation::{FieldError, length_rule};

/// Declares the problem types, one row each, and everything derived from the rows: the enum, `ALL`, and the
/// accessors of each column.
macro_rules! problem_types {
    ($(
        $variant:ident {
            slug: $slug:literal,
            status: $status:ident,
            title: $title:literal,
            stored: $stored:literal,
            retry: $retry:ident $(($seconds:literal))?,
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

            /// Whether an idempotency key stores this failure when its endpoint answers with it; a request rejected
            /// before its endpoint ran is never stored (README, Idempotency keys, point 6).
            pub fn is_stored(self) -> bool {
                match self {
                    $(Self::$variant => $stored),*
                }
            }

            /// When a client should send the same request again.
            pub fn retry(self) -> Retry {
                match self {
                    $(Self::$variant => Retry::$retry $(($seconds))?),*
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

/// When a failed request may be sent again, as its `Retry-After` header says (RFC 9110, section 10.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// No `Retry-After`: waiting does not get past the failure.
    Never,
    /// After this many seconds: a passing failure, or an outcome that is not known yet.
    After(u32),
    /// After the seconds the error itself carries, which only it knows (the rate limit's refill).
    Given,
}

problem_types! {
    MalformedJson {
        slug: "malformed-json",
        status: BAD_REQUEST,
        title: "Malformed JSON",
        stored: true,
        retry: Never,
        description: "The request body is not valid JSON (or is empty). Fix the syntax and send it again.",
    },
    DuplicateMemberName {
        slug: "duplicate-member-name",
        status: BAD_REQUEST,
        title: "Duplicate member name",
        stored: true,
        retry: Never,
        description: "An object in the request body names the same member twice. JSON parsers disagree on which of the values counts (RFC 8259, section 4; I-JSON, RFC 7493, forbids it), so the request is refused rather than guessed at. Send each member once.",
    },
    UnreadableBody {
        slug: "unreadable-body",
        status: BAD_REQUEST,
        title: "Unreadable body",
        stored: true,
        retry: Never,
        description: "The request body could not be read to its end (the connection broke or the body was malformed). Send it again.",
    },
    Unauthorized {
        slug: "unauthorized",
        status: UNAUTHORIZED,
        title: "Unauthorized",
        stored: true,
        retry: Never,
        description: "The Authorization header is missing or does not carry a valid API key. Send `Authorization: Bearer <api_key>`.",
    },
    NotFound {
        slug: "not-found",
        status: NOT_FOUND,
        title: "Not found",
        stored: true,
        retry: Never,
        description: "There is no such resource in your account, or no such route. Objects of other accounts are reported as not found.",
    },
    MethodNotAllowed {
        slug: "method-not-allowed",
        status: METHOD_NOT_ALLOWED,
        title: "Method not allowed",
        stored: true,
        retry: Never,
        description: "The route exists but does not accept this HTTP method.",
    },
    RequestTimeout {
        slug: "request-timeout",
        status: REQUEST_TIMEOUT,
        title: "Request timeout",
        stored: true,
        retry: Never,
        description: "The request was not received within the server's request timeout (its body came too slowly). It never ran; send it again.",
    },
    OutcomeUnknown {
        slug: "outcome-unknown",
        status: GATEWAY_TIMEOUT,
        title: "Outcome unknown",
        stored: false,
        retry: After(1),
        description: "The server could not learn the outcome of the request in time: it outlived the request timeout and goes on running to completion, or the database's acknowledgement of its commit was lost. It may or may not have been applied. Retry after `Retry-After` seconds with the same Idempotency-Key to get its outcome; a request without a key may have been applied, so sending it again blindly may apply it twice (for example, create a second order).",
    },
    TemplateInUse {
        slug: "template-in-use",
        status: CONFLICT,
        title: "Template in use",
        stored: true,
        retry: Never,
        description: "The template cannot be deleted because orders refer to one of its versions. Orders keep the template version they print for their whole life.",
    },
    OrderNotModifiable {
        slug: "order-not-modifiable",
        status: CONFLICT,
        title: "Order can no longer be changed",
        stored: true,
        retry: Never,
        description: "The order has left the `received` status (it is being processed, was sent or was cancelled), so it cannot be changed.",
    },
    PreconditionFailed {
        slug: "precondition-failed",
        status: PRECONDITION_FAILED,
        title: "Precondition failed",
        stored: true,
        retry: Never,
        description: "The object changed since you read it: `If-Match` names none of its current `ETag`s (or `If-None-Match` names it). Nothing was written. GET the object for its current state and `ETag`, and send the change again based on it (with a new Idempotency-Key, since this answer is stored for the key you sent).",
    },
    PayloadTooLarge {
        slug: "payload-too-large",
        status: PAYLOAD_TOO_LARGE,
        title: "Payload too large",
        stored: true,
        retry: Never,
        description: "The request body is larger than the server accepts.",
    },
    UnsupportedMediaType {
        slug: "unsupported-media-type",
        status: UNSUPPORTED_MEDIA_TYPE,
        title: "Unsupported media type",
        stored: true,
        retry: Never,
        description: "A request with a body must send it as JSON, with `Content-Type: application/json` and no parameter but an optional `charset=utf-8`. Other types, `application/merge-patch+json` and other `+json` types included, and other charsets are not supported.",
    },
    ValidationFailed {
        slug: "validation-failed",
        status: UNPROCESSABLE_ENTITY,
        title: "Validation failed",
        stored: false,
        retry: Never,
        description: "The body or query is well-formed JSON but breaks the rules of the API: `errors` lists each field and what is wrong with it. Nothing was written.",
    },
    MalformedFile {
        slug: "malformed-file",
        status: UNPROCESSABLE_ENTITY,
        title: "Malformed file",
        stored: false,
        retry: Never,
        description: "The records of a batch file cannot be told apart with certainty: a quote never closes, a quote stands inside a field that is not quoted, or a record that spans lines has another number of fields than the header. `record` is the row number of the record (0 for the header) and `line` the physical line where its quote opened. The whole file was refused and nothing was written; fix the file and send it again, with the same Idempotency-Key if you like.",
    },
    TemplateNotFound {
        slug: "template-not-found",
        status: UNPROCESSABLE_ENTITY,
        title: "Template not found",
        stored: true,
        retry: Never,
        description: "The order names a template that does not exist in your account. Create the template first or fix `template_id`.",
    },
    MissingMergeVariables {
        slug: "missing-merge-variables",
        status: UNPROCESSABLE_ENTITY,
        title: "Missing merge variables",
        stored: true,
        retry: Never,
        description: "The template version the order prints (or the preview renders) has merge fields that `merge_variables` does not supply: `errors` lists each of them.",
    },
    InternalError {
        slug: "internal-error",
        status: INTERNAL_SERVER_ERROR,
        title: "Internal server error",
        stored: true,
        retry: Never,
        description: "The server failed to handle the request (a bug). Its transaction rolled back, so nothing was written. When the request carried an Idempotency-Key, this answer is stored and replayed for that key.",
    },
    ServiceUnavailable {
        slug: "service-unavailable",
        status: SERVICE_UNAVAILABLE,
        title: "Service unavailable",
        stored: false,
        retry: After(1),
        description: "The database cannot serve the request right now: it is out of reach, shutting down, out of resources, or a statement ran past its timeout. The request's transaction rolled back, so nothing was written; retry after `Retry-After` seconds, with the same Idempotency-Key if you sent one.",
    },
    InvalidIdempotencyKey {
        slug: "invalid-idempotency-key",
        status: BAD_REQUEST,
        title: "Invalid idempotency key",
        stored: true,
        retry: Never,
        description: "The Idempotency-Key header must be sent once, with 1 to 255 printable ASCII characters (a double-quoted value is read as an RFC 8941 string). Nothing was stored.",
    },
    IdempotencyKeyRequired {
        slug: "idempotency-key-required",
        status: BAD_REQUEST,
        title: "Idempotency key required",
        stored: true,
        retry: Never,
        description: "This server requires an Idempotency-Key header on every POST and PATCH.",
    },
    IdempotencyKeyReused {
        slug: "idempotency-key-reused",
        status: UNPROCESSABLE_ENTITY,
        title: "Idempotency key reused",
        stored: true,
        retry: Never,
        description: "The Idempotency-Key was first used for a different request (another method, route, id or body) and is still retained (24 hours by default). Nothing ran; use a new key for a new request.",
    },
    IdempotencyKeyInUse {
        slug: "idempotency-key-in-use",
        status: CONFLICT,
        title: "Idempotency key in use",
        stored: false,
        retry: After(1),
        description: "Another request with the same Idempotency-Key is still running. Nothing ran; retry after `Retry-After` seconds with the same key to get its answer.",
    },
    RateLimited {
        slug: "rate-limited",
        status: TOO_MANY_REQUESTS,
        title: "Too many requests",
        stored: false,
        retry: Given,
        description: "Your account sent more requests than its rate limit allows (`RateLimit-Policy`: `q` requests at once, refilled over `w` seconds). Nothing ran and nothing was stored, not even under an Idempotency-Key; retry after `Retry-After` seconds, with the same key if you sent one. Other accounts are not affected.",
    },
    ResourceBusy {
        slug: "resource-busy",
        status: CONFLICT,
        title: "Resource busy",
        stored: false,
        retry: After(1),
        description: "Another request held the object for longer than the server waits, or the database broke a deadlock or a serialization conflict with another request by rolling this one back. Nothing was written; retry after `Retry-After` seconds.",
    },
    InvalidPrecondition {
        slug: "invalid-precondition",
        status: BAD_REQUEST,
        title: "Invalid precondition",
        stored: false,
        retry: Never,
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
#[schema(example = json!(
    ApiError::invalid_field("recipient.postal_code", length_rule(20)).to_problem()
))]
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
    /// For a malformed file: the record at fault, counted as rows are (the header is 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u32>,
    /// For a malformed file: the physical line (1-based) where the record goes wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}
