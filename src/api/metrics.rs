//! `/metrics`: the server's counters, histograms and pool gauges for a Prometheus scraper.

use axum::{extract::State, http::header};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    http::error::ApiError,
    metrics::{CONTENT_TYPE, Metrics},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Metrics
///
/// Every metric of this server in the Prometheus text exposition format, version 0.0.4
/// (`text/plain; version=0.0.4; charset=utf-8`). It needs no API key: serve it only where scrapers reach it.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "The metrics, one sample a line.", body = String,
        content_type = "text/plain")),
    security())]
pub async fn metrics(
    State(metrics): State<Metrics>,
) -> Result<([(header::HeaderName, &'static str); 1], String), ApiError> {
    let text = metrics
        .encode()
        .map_err(|_| ApiError::internal("the metrics could not be encoded"))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text))
}
