//! Requests that run to completion even when nobody waits for the answer any more.
//!
//! A client that hangs up, or the request timeout, drops the request's future. Dropped halfway through a database
//! round trip, a write would leave its outcome unknown to the retry, and sqlx 0.9.0 cannot even tell whether the
//! connection is still inside a transaction when the drop lands on `BEGIN` (transact-rs/sqlx#4393): the pool would
//! hand out a connection that sits in a stale transaction, holding its locks. So every `/v1` request runs in a task
//! of its own: it commits or rolls back, and stores its key's outcome, whoever is still listening. A retry with the
//! same key then gets that outcome.

use axum::{extract::Request, middleware::Next, response::Response};

use crate::error::ApiError;

/// Runs the rest of the request in its own task and answers with its response, if anyone is still there to read it.
pub async fn run_to_completion(request: Request, next: Next) -> Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "the request's task failed");
            axum::response::IntoResponse::into_response(ApiError::internal(
                "the request's task failed",
            ))
        }
    }
}
