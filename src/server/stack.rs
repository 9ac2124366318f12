//! Every layer a request passes, outermost first, in one place.
//!
//! Around every route ([`app`]), then, once a `/v1` route matched, around its handler (`v1_request_path`).
//! ServiceBuilder reads outermost first, so each list below is the order a request meets the layers.
//!
//! The layers talk to each other through extensions:
//!
//! | extension | written by | read by |
//! |---|---|---|
//! | `x-request-id` header | `request_id::drop_unfit`, `SetRequestIdLayer` | the request span, `PropagateRequestIdLayer` |
//! | [`MatchedPath`] | the router | the request span, `record_request`, the exactly-once layer's fingerprint |
//! | [`RunStarted`] | `problem_for_layer_errors` (unmarked) | `detached::run_to_completion` marks it; `problem_for_layer_errors` reads it |
//! | [`BodyLimit`] | the batch routes' `Extension` | `body::read_body` |
//! | [`Account`] | `auth::require_account` | `rate_limit::limit_account`, the exactly-once layer, handlers |
//! | [`JsonBody`] | the exactly-once layer (the body it parsed for the fingerprint) | the body extractors |
//! | [`TxSlot`] | the exactly-once layer, `tx::commit_on_success` | the [`Tx`] extractor, then the layer that commits |
//! | [`NotRun`] (response) | every extractor's [`Rejection`] | the exactly-once layer: not stored |
//! | [`NotStored`] (response) | `ApiError::into_response` | the exactly-once layer: not stored |
//! | [`OrdersCreated`] (response) | `api::orders::create` | `count_orders` |
//!
//! [`BodyLimit`]: crate::http::body::BodyLimit
//! [`Account`]: crate::http::auth::Account
//! [`JsonBody`]: crate::http::body::JsonBody
//! [`TxSlot`]: crate::idempotency::tx::TxSlot
//! [`Tx`]: crate::idempotency::tx::Tx
//! [`NotRun`]: crate::http::error::NotRun
//! [`NotStored`]: crate::http::error::NotStored
//! [`Rejection`]: crate::http::error::Rejection
//! [`OrdersCreated`]: crate::metrics::OrdersCreated

use std::{any::Any, time::Instant};

use axum::{
    Extension, Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower::ServiceBuilder;
use tower_http::{
    LatencyUnit,
    catch_panic::CatchPanicLayer,
    compression::{CompressionLayer, CompressionLevel},
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer},
};
use tracing::{Level, Span};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use super::{
    accept_encoding, entity_tag_coding,
    request_id::{self, REQUEST_ID},
};
use crate::{
    api,
    config::AllowedOrigins,
    http::{
        auth,
        body::BodyLimit,
        detached::{self, RunStarted},
        error::{ApiError, PROBLEM_JSON},
        extract, rate_limit,
    },
    idempotency::{self, key::IDEMPOTENCY_KEY, replay::IDEMPOTENT_REPLAYED},
    metrics::{Metrics, OrdersCreated},
    state::AppState,
};

/// The whole service as a router, so that tests can drive it.
pub fn app(state: AppState) -> Router {
    let config = &state.config;
    // Order batches take their settings in the query string (a CSV body has no room for them) and bodies up to
    // `BATCH_BODY_LIMIT_BYTES`, set before anything reads the body; no other write takes either.
    let batches = v1_request_path(api::batch_resources().layer(answer_panics()), &state, true)
        .route_layer(Extension(BodyLimit(config.batches.body_limit_bytes)));
    let v1 = v1_request_path(api::resources().layer(answer_panics()), &state, false);
    let (router, openapi) = api::document(
        v1.merge(batches)
            .merge(api::public().layer(answer_panics())),
    );
    let layers = ServiceBuilder::new()
        // A client's x-request-id too long or unprintable to log is dropped, so the next layer makes one.
        .layer(middleware::map_request(request_id::drop_unfit))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        // The span every log line of the request carries, with its route and id; logs each response.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(LatencyUnit::Millis),
                )
                .on_failure(
                    DefaultOnFailure::new()
                        .level(Level::ERROR)
                        .latency_unit(LatencyUnit::Millis),
                ),
        )
        // Every answer, errors and preflights included, carries the request's id.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        // Preflights are answered here, before authentication; every answer gets its Access-Control-* headers.
        .option_layer(cors(&config.cors_allowed_origins))
        // Before compression: an Accept-Encoding nothing satisfies would get a 406 after the endpoint ran.
        .layer(middleware::map_request(
            accept_encoding::disregard_unsatisfiable,
        ))
        // Just outside compression: an ETag names its coding; preconditions are read for this request's coding.
        .layer(middleware::from_fn(entity_tag_coding::tag_per_coding))
        // Outside the exactly-once layer: keys store and replay the uncompressed answer.
        .layer(compression())
        // Outside the timeout: counts the status the client gets.
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            record_request,
        ))
        // Gives the timeout's bare 408 a problem body, or 504 once the request began to run.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            problem_for_layer_errors,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        // The default body limit; a route may set its own (`BodyLimit`), read where the body is read.
        .layer(DefaultBodyLimit::max(config.request_body_limit_bytes));
    router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(api::route_not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(layers)
        .with_state(state)
}

/// What a matched `/v1` route passes through before its handler, outermost first.
fn v1_request_path(
    routes: OpenApiRouter<AppState>,
    state: &AppState,
    writes_take_queries: bool,
) -> OpenApiRouter<AppState> {
    routes.route_layer(
        ServiceBuilder::new()
            // 401 before anything else is known about the request.
            .layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_account,
            ))
            // Per account, so it needs the account; before the body is read, so a refused request costs nothing.
            .layer(middleware::from_fn_with_state(
                state.clone(),
                rate_limit::limit_account,
            ))
            // A write with query parameters is a 422 before anything runs (order batches take their settings there).
            .option_layer(
                (!writes_take_queries)
                    .then(|| middleware::from_fn(extract::reject_query_on_writes)),
            )
            // Reads the body, then runs the rest in a task of its own, to completion whoever still listens.
            .layer(middleware::from_fn_with_state(
                state.clone(),
                detached::run_to_completion,
            ))
            // Inside the run to completion, so that an order that commits after its client left counts too.
            .layer(middleware::from_fn_with_state(
                state.metrics.clone(),
                count_orders,
            ))
            // Keyed POST and PATCH run once; every request gets its transaction, committed on success.
            .layer(middleware::from_fn_with_state(
                state.clone(),
                idempotency::layer::exactly_once,
            )),
    )
}

/// The one panic net: right around every handler, so that a panic is the handler's 500 and nothing else unwinds.
/// Layers hold no code that panics; a panic there is a bug that closes the connection.
fn answer_panics() -> CatchPanicLayer<fn(Box<dyn Any + Send>) -> Response> {
    CatchPanicLayer::custom(|_| ApiError::internal("the handler panicked").into_response())
}

/// The headers a client sends that a browser must be allowed to send across origins: the API key, the body's
/// media type, the exactly-once key, the preconditions and the page's own request id, which the server honours.
const CORS_REQUEST_HEADERS: [HeaderName; 6] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    IDEMPOTENCY_KEY,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    REQUEST_ID,
];

/// The response headers a browser script may read besides the CORS-safelisted ones (Fetch standard): where a new
/// object lives, whether an answer is a replay, the object's version tag, when to retry, the request's id, and the
/// rate limit, so that a page can pace itself before a 429.
const CORS_EXPOSED_HEADERS: [HeaderName; 7] = [
    header::LOCATION,
    IDEMPOTENT_REPLAYED,
    header::ETAG,
    header::RETRY_AFTER,
    REQUEST_ID,
    rate_limit::RATELIMIT,
    rate_limit::RATELIMIT_POLICY,
];

/// CORS for the configured origins (tower-http's `CorsLayer` answers preflights and adds the `Access-Control-*`
/// headers to every answer, errors included), or nothing when no origin is configured. No credentials mode: the
/// API key travels in `Authorization`, never in a cookie.
fn cors(origins: &AllowedOrigins) -> Option<CorsLayer> {
    if origins.as_slice().is_empty() {
        return None;
    }
    let origins = origins
        .as_slice()
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok());
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(CORS_REQUEST_HEADERS)
            .expose_headers(CORS_EXPOSED_HEADERS)
            .max_age(CORS_MAX_AGE),
    )
}

/// How long a browser may reuse a preflight's answer: 2 hours, Chromium's cap (Firefox allows 24 hours).
const CORS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(2 * 60 * 60);

/// gzip, Brotli and zstd for clients that ask for them with `Accept-Encoding` (tower-http's `CompressionLayer`,
/// which skips small bodies, images and answers that are already encoded). Outside the exactly-once layer, so keys
/// store and replay the uncompressed answer and each request gets it in the encoding it asks for. Its 406 for a
/// request that accepts nothing it can produce would come after the endpoint ran, so such a request loses its
/// `Accept-Encoding` first (`accept_encoding`). Level 4 for all three: Brotli's default (11) costs far more CPU
/// than it saves on dynamic JSON, and 4 is near the defaults of gzip (6) and zstd (3).
fn compression() -> CompressionLayer {
    CompressionLayer::new().quality(CompressionLevel::Precise(4))
}

/// One span per request, with its route and id, so that every log line of the request carries them; the
/// exactly-once layer adds a keyed request's `key_digest` and `idempotency` outcome, for its response line.
fn request_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("-", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
        account_id = tracing::field::Empty,
        key_digest = tracing::field::Empty,
        idempotency = tracing::field::Empty,
    )
}

/// Counts the orders a response says were created, once the exactly-once layer committed them (a replay or a
/// failed commit carries no [`OrdersCreated`]).
async fn count_orders(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(&created) = response.extensions().get::<OrdersCreated>() {
        metrics.orders_created(created);
    }
    response
}

/// Counts and times every response, `/metrics` included, by its route template rather than its path, so that ids
/// do not make a series each. Outside the timeout layer, it sees the status the client gets.
async fn record_request(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|route| route.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.http_request(
        &method,
        route.as_deref(),
        response.status(),
        started.elapsed(),
    );
    response
}

/// The timeout layer answers with a bare status code; give it a problem body like every error. Body limits are
/// applied where the body is read (`body::read_body`), with the limit of the route, and answer problems already.
///
/// A timeout before the request began to run is a 408 (it never ran); after that, the request runs on to
/// completion, so the answer is 504 `outcome-unknown`.
async fn problem_for_layer_errors(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = RunStarted::default();
    request.extensions_mut().insert(started.clone());
    let response = next.run(request).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|content_type| content_type == PROBLEM_JSON);
    if is_problem {
        return response;
    }
    let seconds = state.config.request_timeout.as_secs();
    match response.status() {
        StatusCode::REQUEST_TIMEOUT if started.is_marked() => {
            ApiError::still_running(seconds).into_response()
        }
        StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout { seconds }.into_response(),
        _ => response,
    }
}
