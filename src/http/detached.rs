//! Requests that run to completion even when nobody waits for the answer any more.
//!
//! A client that hangs up, or the request timeout, drops the request's future. Dropped halfway through a database
//! round trip, a write would leave its outcome unknown to the retry, and sqlx 0.9.0 cannot even tell whether the
//! connection is still inside a transaction when the drop lands on `BEGIN` (transact-rs/sqlx#4393): the pool would
//! hand out a connection that sits in a stale transaction, holding its locks. So once its body has arrived, every
//! `/v1` request runs in a task of its own: it commits or rolls back, and stores its key's outcome, whoever is still
//! listening. A retry with the same key then gets that outcome.
//!
//! The body is read first, within the request timeout: a request whose body is late never runs. Once it runs, the
//! request is marked [`RunStarted`], so that a timeout after that answers "outcome unknown", not "never ran".

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument;

use crate::{http::body::read_body, http::error::ApiError, state::AppState};

/// Whether a request has begun to run to completion; set by [`run_to_completion`], read by the layer that answers
/// for the request timeout.
#[derive(Debug, Clone, Default)]
pub struct RunStarted(Arc<AtomicBool>);

impl RunStarted {
    fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once the request's body has arrived and its handler runs.
    pub fn is_marked(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Reads the body, then runs the rest of the request in a task the server waits for when it shuts down.
pub async fn run_to_completion(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_body(Request::from_parts(parts.clone(), body), &state).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    if let Some(started) = parts.extensions.get::<RunStarted>() {
        started.mark();
    }
    let request = Request::from_parts(parts, Body::from(body));
    let task = state
        .tasks
        .spawn(next.run(request).instrument(tracing::Span::current()));
    match task.await {
        Ok(response) => response,
        // Handlers answer their own panics; a panic here is a bug in a layer, and goes on unwinding as it would
        // without the task.
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels the task.
            Err(cancelled) => ApiError::internal(cancelled).into_response(),
        },
    }
}
