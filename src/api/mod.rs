//! The HTTP API: one module per resource, assembled into one router with its OpenAPI document.

pub mod health;
pub mod idempotency_keys;
pub mod list;
pub mod metrics;
pub mod openapi;
pub mod order_batches;
pub mod orders;
pub mod problems;
pub mod template_versions;
pub mod templates;

use axum::{
    Router,
    http::{Method, Uri},
};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::{http::error::ApiError, state::AppState};

/// The `/v1` resources that take JSON bodies within `REQUEST_BODY_LIMIT_BYTES`; `server::stack` puts the request
/// path around them.
pub fn resources() -> OpenApiRouter<AppState> {
    templates::router()
        .merge(template_versions::router())
        .merge(orders::router())
        .merge(idempotency_keys::router())
}

/// The `/v1` resources that take files: order batches, with settings in the query and a larger body limit.
pub fn batch_resources() -> OpenApiRouter<AppState> {
    order_batches::router()
}

/// The routes outside `/v1`: health, metrics and the problem types' descriptions, with no authentication.
pub fn public() -> OpenApiRouter<AppState> {
    health::router()
        .merge(metrics::router())
        .merge(problems::router())
}

/// The routes and their OpenAPI document, with what the layers add to every operation written into it.
pub fn document(routes: OpenApiRouter<AppState>) -> (Router<AppState>, OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(openapi::openapi())
        .merge(routes)
        .split_for_parts();
    openapi::document_idempotency(&mut openapi);
    openapi::document_closed_request_objects(&mut openapi);
    openapi::document_conditional_requests(&mut openapi);
    openapi::document_transport_answers(&mut openapi);
    openapi::document_outcome_unknown(&mut openapi);
    openapi::document_rate_limits(&mut openapi);
    (router, openapi)
}

/// The OpenAPI document alone, with no database or server behind it.
pub fn openapi() -> OpenApi {
    document(resources().merge(batch_resources()).merge(public())).1
}

/// For any path no route matches.
pub async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::RouteNotFound(format!("{method} {}", uri.path()))
}

/// For a route that does not take the request's method.
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
    }
}
