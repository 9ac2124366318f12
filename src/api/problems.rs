//! Problem types: the reusable error responses of the OpenAPI document, and `/problems/{slug}` describing each type.

use axum::{Json, extract::Path};
use serde::{Deserialize, Serialize};
use utoipa::{
    IntoParams, PartialSchema, ToResponse, ToSchema,
    openapi::{Object, ObjectBuilder, RefOr, Schema, Type},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    http::error::{ApiError, Problem, ProblemType},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(describe))
}

/// The request body is not JSON that can be read, or a header (`Idempotency-Key`, `If-Match`, `If-None-Match`)
/// cannot be read.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!({
    "type": "/problems/malformed-json", "title": "Malformed JSON", "status": 400,
    "detail": "The body is not valid JSON: EOF while parsing an object at line 1 column 14."
}))]
pub struct BadRequest(pub Problem);

/// The API key is missing or invalid.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "`Bearer`, with `error=\"invalid_token\"` for a key that is not valid.")),
    example = json!({
        "type": "/problems/unauthorized", "title": "Unauthorized", "status": 401,
        "detail": "Send your API key as `Authorization: Bearer <api_key>`."
    })
)]
pub struct Unauthorized(pub Problem);

/// No such object in your account.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!({
    "type": "/problems/not-found", "title": "Not found", "status": 404,
    "detail": "No such order: '019ac9f1-1a2b-7c3d-8e4f-5a6b7c8d9e0f'."
}))]
pub struct NotFound(pub Problem);

/// The object is not in a state that allows the request.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!({
    "type": "/problems/order-not-modifiable", "title": "Order can no longer be changed", "status": 409,
    "detail": "Order '019ac9f1-1a2b-7c3d-8e4f-5a6b7c8d9e0f' is cancelled and can only be changed while it is received."
}))]
pub struct Conflict(pub Problem);

/// The route does not take this method; `Allow` lists the methods it takes.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Allow" = String, description = "The methods the route takes, e.g. `GET, PATCH, DELETE`.")),
    example = json!({
        "type": "/problems/method-not-allowed", "title": "Method not allowed", "status": 405,
        "detail": "PUT is not allowed on this route."
    })
)]
pub struct MethodNotAllowed(pub Problem);

/// The request was not received and answered within `REQUEST_TIMEOUT_SECONDS`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!({
    "type": "/problems/request-timeout", "title": "Request timeout", "status": 408,
    "detail": "The request did not complete within 30 seconds."
}))]
pub struct RequestTimeout(pub Problem);

/// The object changed since the client read it: `If-Match` names none of its current tags.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("ETag" = String, description = "The object's current entity tag, in the form this request would get it.")),
    example = json!({
    "type": "/problems/precondition-failed", "title": "Precondition failed", "status": 412,
    "detail": "The object's current entity tag does not satisfy If-Match or If-None-Match."
    })
)]
pub struct PreconditionFailed(pub Problem);

/// The request body is larger than the server accepts.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!({
    "type": "/problems/payload-too-large", "title": "Payload too large", "status": 413,
    "detail": "The request body is larger than 1048576 bytes."
}))]
pub struct PayloadTooLarge(pub Problem);

/// The request body is not sent as JSON.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!({
    "type": "/problems/unsupported-media-type", "title": "Unsupported media type", "status": 415,
    "detail": "Send the body as JSON with `Content-Type: application/json`."
}))]
pub struct UnsupportedMediaType(pub Problem);

/// The request breaks a rule of the API; `errors` names each field.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!({
    "type": "/problems/validation-failed", "title": "Validation failed", "status": 422,
    "detail": "The request has 1 invalid field(s).",
    "errors": [{"field": "recipient.country", "message": "`XX` is not an assigned ISO 3166-1 alpha-2 code"}]
}))]
pub struct UnprocessableEntity(pub Problem);

/// The server failed; nothing was written.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!({
    "type": "/problems/internal-error", "title": "Internal server error", "status": 500,
    "detail": "An internal error occurred."
}))]
pub struct InternalError(pub Problem);

/// The database cannot be reached; nothing was written.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = String, description = "Seconds to wait before retrying.")),
    example = json!({
        "type": "/problems/service-unavailable", "title": "Service unavailable", "status": 503,
        "detail": "The database is unavailable."
    })
)]
pub struct ServiceUnavailable(pub Problem);

/// The request outlived the request timeout and runs on, or its commit was not acknowledged: its outcome is
/// unknown.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = String, description = "Seconds to wait before retrying with the same Idempotency-Key.")),
    example = json!({
        "type": "/problems/outcome-unknown", "title": "Outcome unknown", "status": 504,
        "detail": "The request did not finish within 30 seconds and is still running; it may or may not be applied. Retry with the same Idempotency-Key to learn its outcome; without a key, a blind retry may apply it twice."
    })
)]
pub struct OutcomeUnknown(pub Problem);
/// The account's rate limit is used up; nothing ran and nothing was stored.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(
        ("Retry-After" = String, description = "Seconds to wait before the next request is let through."),
        ("RateLimit-Policy" = String, description = "The account's quota policy (draft-ietf-httpapi-ratelimit-headers): `\"account\";q=<requests at once>;w=<seconds to refill them>`."),
        ("RateLimit" = String, description = "What is left of the quota (draft-ietf-httpapi-ratelimit-headers): `\"account\";r=<requests left>;t=<seconds until the quota is full again>`."),
    ),
    example = json!({
        "type": "/problems/rate-limited", "title": "Too many requests", "status": 429,
        "detail": "Your account's rate limit is used up; retry after 1 second(s)."
    })
)]
pub struct TooManyRequests(pub Problem);

/// What a problem type means.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "/problems/template-in-use", "title": "Template in use", "status": 409,
    "description": "The template cannot be deleted because orders refer to it. Orders keep their template for their whole life."
}))]
pub struct ProblemDescription {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    description: &'static str,
}

/// Which problem type to describe.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProblemPath {
    /// The last segment of a problem `type`, e.g. `template-in-use`.
    // A `value_type` rather than `schema_with`: utoipa drops a parameter's `required` and description when
    // `schema_with` gives its schema, and OpenAPI requires every path parameter to be required.
    #[param(value_type = ProblemSlug, inline)]
    slug: String,
}

/// The slug of a problem type: one of the slugs the service defines.
pub struct ProblemSlug;

impl PartialSchema for ProblemSlug {
    fn schema() -> RefOr<Schema> {
        problem_slug().into()
    }
}

impl ToSchema for ProblemSlug {}

/// Describe a problem type
///
/// The `type` of every error response is a path under `/problems/`; this is what it means.
#[utoipa::path(
    get,
    path = "/problems/{slug}",
    operation_id = "describeProblem",
    tag = "problems",
    params(ProblemPath),
    responses(
        (status = 200, description = "The problem type.", body = ProblemDescription),
        (status = 404, response = NotFound),
    ),
    security()
)]
pub async fn describe(
    Path(ProblemPath { slug }): Path<ProblemPath>,
) -> Result<Json<ProblemDescription>, ApiError> {
    let kind = ProblemType::from_slug(&slug).ok_or(ApiError::NotFound {
        resource: "problem type",
        id: slug,
    })?;
    Ok(Json(ProblemDescription {
        kind: kind.uri(),
        title: kind.title(),
        status: kind.status().as_u16(),
        description: kind.description(),
    }))
}

/// The slug of a problem type.
fn problem_slug() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ProblemType::ALL.iter().map(|kind| kind.slug())))
        .examples([serde_json::json!("template-in-use")])
        .build()
}
