//! The state every handler and layer can reach: the pool, the configuration, metrics and in-process locks.

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgPool;
use tokio_util::task::TaskTracker;

use crate::{
    config::Config, db::Begin, http::auth::LiveKeys, http::rate_limit::RateLimits,
    idempotency::locks::KeyLocks, metrics::Metrics,
};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// How request transactions begin on this database (PostgreSQL or Citus).
    pub begin: Begin,
    pub config: Arc<Config>,
    /// Lines up requests with the same idempotency key in this server.
    pub key_locks: Arc<KeyLocks>,
    /// This server's Prometheus metrics, served at `/metrics`.
    pub metrics: Metrics,
    /// The requests running in tasks of their own; shutdown waits for them.
    pub tasks: TaskTracker,
    /// Each account's token bucket; `None` when rate limiting is off.
    pub rate_limits: Option<Arc<RateLimits>>,
    /// The API keys this server checked recently (`API_KEY_CACHE_SECONDS`).
    pub live_keys: LiveKeys,
}

impl AppState {
    pub fn new(pool: PgPool, config: Config) -> Self {
        Self {
            metrics: Metrics::new(&pool),
            rate_limits: RateLimits::new(config.rate_limit).map(Arc::new),
            live_keys: LiveKeys::new(config.api_key_cache_ttl),
            pool,
            begin: Begin::default(),
            config: Arc::new(config),
            key_locks: Arc::default(),
            tasks: TaskTracker::new(),
        }
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.pool.clone()
    }
}

impl FromRef<AppState> for Metrics {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

impl FromRef<AppState> for Begin {
    fn from_ref(state: &AppState) -> Self {
        state.begin.clone()
    }
}

impl FromRef<AppState> for LiveKeys {
    fn from_ref(state: &AppState) -> Self {
        state.live_keys.clone()
    }
}

impl FromRef<AppState> for Option<Arc<RateLimits>> {
    fn from_ref(state: &AppState) -> Self {
        state.rate_limits.clone()
    }
}
