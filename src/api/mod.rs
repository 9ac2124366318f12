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

use std::any::Any;

use axum::{
    Extension, Router,
    http::{Method, Uri},
    middleware,
    response::{IntoResponse, Response},
};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::http::{detached, extract};
use crate::{
    http::auth, http::body::BodyLimit, http::error::ApiError, http::rate_limit, idempotency,
    state::AppState,
};

/// Every route and the OpenAPI document that describes it. A `/v1` request is authenticated, counted against its
/// account's rate limit, a write with query parameters is rejected ([`extract::reject_query_on_writes`]), then, once
/// its body has arrived, runs to completion in a task of its own through the exactly-once layer, which runs keyed
/// POST and PATCH once and gives every request its transaction. A handler that panics answers 500 like any failing
/// handler ([`answer_panics`]), so the layers around it see an ordinary response: its transaction rolls back and a
/// key stores the 500.
pub fn router(state: &AppState) -> (Router<AppState>, OpenApi) {
    // An order batch takes its settings in the query string (a CSV body has no room for them); no other write does.
    let batches = request_path(batch_resources(), state, true)
        .route_layer(Extension(BodyLimit(state.config.batches.body_limit_bytes)));
    assemble(request_path(resources(), state, false).merge(batches))
}

/// The OpenAPI document alone, with no database or server behind it.
pub fn openapi() -> OpenApi {
    assemble(resources().merge(batch_resources())).1
}

/// What every `/v1` route passes through, outermost last: authentication, the account's rate limit, the rejection of
/// query parameters on writes (unless `writes_take_queries`), the detached task that reads the body, the
/// exactly-once layer.
fn request_path(
    routes: OpenApiRouter<AppState>,
    state: &AppState,
    writes_take_queries: bool,
) -> OpenApiRouter<AppState> {
    let routes = routes
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer::exactly_once,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            detached::run_to_completion,
        ));
    let routes = if writes_take_queries {
        routes
    } else {
        routes.route_layer(middleware::from_fn(extract::reject_query_on_writes))
    };
    routes
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit_account,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_account,
        ))
}

fn resources() -> OpenApiRouter<AppState> {
    templates::router()
        .merge(template_versions::router())
        .merge(orders::router())
        .merge(idempotency_keys::router())
        .layer(answer_panics())
}

/// Order batches take bodies up to `BATCH_BODY_LIMIT_BYTES`, set before anything reads the body.
fn batch_resources() -> OpenApiRouter<AppState> {
    order_batches::router().layer(answer_panics())
}

fn assemble(v1: OpenApiRouter<AppState>) -> (Router<AppState>, OpenApi) {
    let public = health::router()
        .merge(metrics::router())
        .merge(problems::router())
        .layer(answer_panics());
    let (router, mut openapi) = OpenApiRouter::with_openapi(openapi::openapi())
        .merge(v1)
        .merge(public)
        .split_for_parts();
    openapi::document_idempotency(&mut openapi);
    openapi::document_closed_request_objects(&mut openapi);
    openapi::document_conditional_requests(&mut openapi);
    openapi::document_transport_answers(&mut openapi);
    openapi::document_outcome_unknown(&mut openapi);
    openapi::document_rate_limits(&mut openapi);
    (router, openapi)
}

/// The one panic net: right around every handler, so that a panic is the handler's 500 and nothing else unwinds.
/// Layers hold no code that panics; a panic there is a bug that closes the connection.
fn answer_panics() -> CatchPanicLayer<fn(Box<dyn Any + Send>) -> Response> {
    CatchPanicLayer::custom(|_| ApiError::internal("the handler panicked").into_response())
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
