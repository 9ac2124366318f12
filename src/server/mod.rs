//! The HTTP server: the middleware stack, background tasks, and serving until a shutdown signal.

pub mod accept_encoding;
pub mod connection;
pub mod entity_tag_coding;
pub mod request_id;

use std::time::Instant;

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::{
    LatencyUnit,
    compression::{CompressionLayer, CompressionLevel},
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer},
};
use tracing::{Level, Span};
use utoipa_swagger_ui::SwaggerUi;

use self::request_id::REQUEST_ID;
use crate::{
    api,
    config::{AllowedOrigins, Config},
    db,
    http::{
        detached::RunStarted,
        error::{ApiError, PROBLEM_JSON},
    },
    idempotency::sweeper,
    metrics::Metrics,
    state::AppState,
};

/// The whole service as a router, so that tests can drive it.
pub fn app(state: AppState) -> Router {
    let (router, openapi) = api::router(&state);
    let config = &state.config;
    let layers = ServiceBuilder::new()
        .layer(middleware::map_request(request_id::drop_unfit))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
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
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .option_layer(cors(&config.cors_allowed_origins))
        .layer(middleware::map_request(
            accept_encoding::disregard_unsatisfiable,
        ))
        .layer(middleware::from_fn(entity_tag_coding::tag_per_coding))
        .layer(compression())
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            record_request,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            problem_for_layer_errors,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(DefaultBodyLimit::max(config.request_body_limit_bytes));
    router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(api::route_not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(layers)
        .with_state(state)
}

/// The headers a client sends that a browser must be allowed to send across origins: the API key, the body's
/// media type, the exactly-once key and the preconditions.
const CORS_REQUEST_HEADERS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    HeaderName::from_static("idempotency-key"),
    header::IF_MATCH,
    header::IF_NONE_MATCH,
];

/// The response headers a browser script may read besides the CORS-safelisted ones (Fetch standard): where a new
/// object lives, whether an answer is a replay, the object's version tag, when to retry, and the request's id.
const CORS_EXPOSED_HEADERS: [HeaderName; 5] = [
    header::LOCATION,
    HeaderName::from_static("idempotent-replayed"),
    header::ETAG,
    header::RETRY_AFTER,
    REQUEST_ID,
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

/// One span per request, with its route and id, so that every log line of the request carries them.
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
    )
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

/// Connects, migrates when asked to, and serves until SIGINT or SIGTERM; in-flight requests then have
/// `SHUTDOWN_TIMEOUT_SECONDS` to finish.
///
/// Past that deadline they are abandoned: the process exits with an error, its database connections close, and
/// PostgreSQL rolls their transactions back, so nothing half-done commits and their keys are free for a retry.
pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if config.run_migrations {
        db::migrate(&config.database).await?;
        tracing::info!("migrations applied");
    }
    let pool = db::pool(
        &config.database,
        db::Sessions::Requests {
            lock_timeout: config.idempotency.wait_timeout,
        },
    )?;
    build(config, pool).await?.serve(shutdown_signal()).await
}

/// Binds `config.listen_addr` and starts the sweeper on `pool`: the whole start-up but serving.
///
/// The API tests start their servers here too, on port 0 and the pool of their database.
pub async fn build(config: Config, pool: sqlx::PgPool) -> Result<Server, std::io::Error> {
    let listener = TcpListener::bind(config.listen_addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(address = %addr, "listening");
    let state = AppState::new(pool, config);
    let stop_sweeper = CancellationToken::new();
    let sweeper = sweeper::spawn(
        state.pool.clone(),
        state.config.idempotency.sweep_interval,
        stop_sweeper.clone(),
        state.metrics.clone(),
    );
    Ok(Server {
        listener,
        addr,
        state,
        sweeper,
        stop_sweeper,
    })
}

/// A server that listens and sweeps, and answers requests once [`Server::serve`] runs.
pub struct Server {
    listener: TcpListener,
    addr: std::net::SocketAddr,
    state: AppState,
    sweeper: tokio::task::JoinHandle<()>,
    stop_sweeper: CancellationToken,
}

impl Server {
    /// The address it listens on, with the port the system chose when the configured one is 0.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Its metrics, which count the sweeper's passes from the first one, made as it starts.
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// Serves until `shutdown` resolves; in-flight requests then have the configured shutdown timeout to finish,
    /// and the sweeper and the pool stop after them.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let Self {
            listener,
            state,
            sweeper,
            stop_sweeper,
            ..
        } = self;
        let pool = state.pool.clone();
        let header_read_timeout = state.config.request_timeout;
        let shutdown_timeout = state.config.shutdown_timeout;
        let tasks = state.tasks.clone();
        let signalled = CancellationToken::new();
        let serving = tokio::spawn(connection::serve(
            listener,
            app(state),
            header_read_timeout,
            signalled.clone().cancelled_owned(),
        ));
        shutdown.await;
        signalled.cancel();
        let drained = tokio::time::timeout(shutdown_timeout, async {
            if let Err(error) = serving.await {
                tracing::error!(%error, "the server task failed");
            }
            // Requests whose clients hung up still run; their outcomes are stored before the pool closes.
            tasks.close();
            tasks.wait().await;
            stop_sweeper.cancel();
            if let Err(error) = sweeper.await {
                tracing::error!(%error, "the sweeper task failed");
            }
            pool.close().await;
        })
        .await;
        if drained.is_err() {
            let abandoned = tasks.len();
            tracing::error!(
                abandoned,
                "in-flight requests did not finish within the shutdown timeout; abandoning them"
            );
            return Err(format!(
                "{abandoned} request(s) abandoned after {} s; the database rolls back what they did not commit",
                shutdown_timeout.as_secs()
            )
            .into());
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
