//! Problem types: the reusable error responses of the OpenAPI document, and `/problems/{slug}` describing each type.

use axum::{Json, extract::Path};
use serde::{Deserialize, Serialize};
use utoipa::{
    IntoParams, PartialSchema, ToResponse, ToSchema,
    openapi::{Object, ObjectBuilder, RefOr, Schema, Type},
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    domain::country::CountryCode,
    http::{
        conditional::EntityTag,
        error::{ApiError, Credentials, Problem, ProblemType},
    },
    state::AppState,
};

/// The id in the examples that name an object.
const EXAMPLE_ID: Uuid = Uuid::from_u128(0x019ac9f1_1a2b_7c3d_8e4f_5a6b7c8d9e0f);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(describe))
}

/// The request body is not JSON that can be read, or a header (`Idempotency-Key`, `If-Match`, `If-None-Match`)
/// cannot be read.
// Its detail is serde_json's, so a test holds it to the server's answer instead.
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
    example = json!(ApiError::Unauthorized(Credentials::Missing).to_problem())
)]
pub struct Unauthorized(pub Problem);

/// No such object in your account.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!(
    ApiError::NotFound { resource: "order", id: EXAMPLE_ID.to_string() }.to_problem()
))]
pub struct NotFound(pub Problem);

/// The object is not in a state that allows the request.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!(
    ApiError::OrderNotModifiable { id: EXAMPLE_ID, status: "cancelled".to_owned() }.to_problem()
))]
pub struct Conflict(pub Problem);

/// The route does not take this method; `Allow` lists the methods it takes.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Allow" = String, description = "The methods the route takes, e.g. `GET, PATCH, DELETE`.")),
    example = json!(ApiError::MethodNotAllowed { method: "PUT".to_owned() }.to_problem())
)]
pub struct MethodNotAllowed(pub Problem);

/// The request was not received and answered within `REQUEST_TIMEOUT_SECONDS`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!(
    ApiError::RequestTimeout { seconds: 30 }.to_problem()
))]
pub struct RequestTimeout(pub Problem);

/// The object changed since the client read it: `If-Match` names none of its current tags.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("ETag" = String, description = "The object's current entity tag, in the form this request would get it.")),
    example = json!(ApiError::PreconditionFailed(EntityTag::first()).to_problem())
)]
pub struct PreconditionFailed(pub Problem);

/// The request body is larger than the server accepts.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!(
    ApiError::PayloadTooLarge { limit: 1024 * 1024 }.to_problem()
))]
pub struct PayloadTooLarge(pub Problem);

/// The request body is not sent as JSON.
// Its detail is the body reader's, so a test holds it to the server's answer instead.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!({
    "type": "/problems/unsupported-media-type", "title": "Unsupported media type", "status": 415,
    "detail": "Send the body with `Content-Type: application/json`."
}))]
pub struct UnsupportedMediaType(pub Problem);

/// The request breaks a rule of the API; `errors` names each field.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!(
    ApiError::invalid_field("recipient.country", CountryCode::parse("XX").err().unwrap_or_default()).to_problem()
))]
pub struct UnprocessableEntity(pub Problem);

/// The server failed; nothing was written.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json", example = json!(
    ApiError::internal("a bug").to_problem()
))]
pub struct InternalError(pub Problem);

/// The database cannot be reached; nothing was written.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = String, description = "Seconds to wait before retrying.")),
    example = json!(ApiError::DatabaseUnavailable(sqlx::Error::PoolTimedOut).to_problem())
)]
pub struct ServiceUnavailable(pub Problem);

/// The request outlived the request timeout and runs on, or its commit was not acknowledged: its outcome is
/// unknown.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = String, description = "Seconds to wait before retrying with the same Idempotency-Key.")),
    example = json!(ApiError::still_running(30).to_problem())
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
    example = json!(ApiError::RateLimited { retry_after: 1 }.to_problem())
)]
pub struct TooManyRequests(pub Problem);

/// What a problem type means.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!(ProblemDescription::of(ProblemType::TemplateInUse)))]
pub struct ProblemDescription {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    description: &'static str,
}

impl ProblemDescription {
    /// The description of one problem type, from its row.
    fn of(kind: ProblemType) -> Self {
        Self {
            kind: kind.uri(),
            title: kind.title(),
            status: kind.status().as_u16(),
            description: kind.description(),
        }
    }
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
    Ok(Json(ProblemDescription::of(kind)))
}

/// The slug of a problem type.
fn problem_slug() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ProblemType::ALL.iter().map(|kind| kind.slug())))
        .examples([serde_json::json!("template-in-use")])
        .build()
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};
    use serde_json::Value;

    use super::*;
    use crate::{
        api::openapi::openapi,
        http::{body::parse_json, error::PROBLEM_JSON},
    };

    /// The example of every reusable problem response in the document, by name.
    fn examples() -> Vec<(String, Value)> {
        let components = openapi().components.expect("components");
        components
            .responses
            .into_iter()
            .filter_map(|(name, response)| match response {
                RefOr::T(response) => match response.content.get(PROBLEM_JSON)? {
                    RefOr::T(content) => Some((name, content.example.clone().expect("an example"))),
                    RefOr::Ref(_) => None,
                },
                RefOr::Ref(_) => None,
            })
            .collect()
    }

    fn example(name: &str) -> Value {
        let (_, example) = examples().into_iter().find(|(n, _)| n == name).unwrap();
        example
    }

    #[test]
    fn every_problem_example_has_the_type_title_and_status_of_its_row() {
        let examples = examples();
        assert!(!examples.is_empty());
        for (name, example) in examples {
            let kind = example["type"]
                .as_str()
                .and_then(|uri| uri.strip_prefix("/problems/"))
                .and_then(ProblemType::from_slug)
                .unwrap_or_else(|| panic!("{name}: no problem type"));
            assert_eq!(example["title"], kind.title(), "{name}");
            assert_eq!(example["status"], kind.status().as_u16(), "{name}");
        }
    }

    #[test]
    fn the_examples_of_unreadable_bodies_are_what_the_server_answers() {
        let json = HeaderMap::from_iter([(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )]);
        let answer = |headers: &HeaderMap, body: &[u8]| {
            serde_json::to_value(parse_json(headers, body).unwrap_err().to_problem()).unwrap()
        };
        assert_eq!(answer(&json, br#"{"name": "Hi!""#), example("BadRequest"));
        assert_eq!(
            answer(&HeaderMap::new(), b"{}"),
            example("UnsupportedMediaType")
        );
    }
}
