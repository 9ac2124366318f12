//! The exactly-once layer: runs a keyed POST or PATCH once and answers every retry with its first outcome.
//!
//! For a request with `Idempotency-Key`:
//! 1. The key (400), the body (400, 413, 415) and its fingerprint are read; nothing is stored for a rejection.
//! 2. Requests with the same key wait for each other in this server ([`KeyLocks`](super::locks::KeyLocks); 409
//!    after the wait timeout).
//! 3. The key row is read in the transaction the endpoint will write in. A live row answers at once: its response
//!    again, or 422 when the fingerprint differs.
//! 4. Otherwise the endpoint runs in that transaction, and a success is stored with its key row in it too: both
//!    commit or neither does. A failure (4xx or 500) rolls back and is stored on its own, unless it is one that
//!    is not stored ([`ApiError::is_stored`]: validation, passing database faults, an unknown outcome).
//! 5. When another server committed the key first, the unique row makes this transaction wait for it, then roll
//!    back and answer with the stored outcome: the operation never happens twice.
//!
//! How each keyed request ends is counted as an [`Outcome`] for `/metrics`, and written with the key's digest on
//! the request's span, so that its response line carries both.

use axum::{
    body::Body,
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
};
use sqlx::{PgConnection, PgExecutor, Postgres, Transaction};

use super::{
    fingerprint::{self, Fingerprint},
    key::IdempotencyKey,
    replay::{capture, replay},
    tx::{self, TxSlot},
};
use crate::{
    db::{
        self,
        idempotency_keys::{RequestLine, StoredResponse},
    },
    http::auth::Account,
    http::body::{JsonBody, read_body},
    http::error::{ApiError, NotRun, NotStored},
    metrics::Outcome,
    state::AppState,
};

/// Whether a request of this method runs exactly once when it carries a key: POST and PATCH, the writes that are
/// not idempotent by themselves (DELETE is).
pub fn is_keyed(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PATCH)
}

/// Every request under `/v1` passes here; a keyed method with a key runs exactly once, the rest run as they are.
pub async fn exactly_once(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !is_keyed(request.method()) {
        return tx::commit_on_success(request, next).await;
    }
    let key = match IdempotencyKey::from_headers(request.headers()) {
        Ok(Some(key)) => key,
        Ok(None) if state.config.idempotency.key_required => {
            return ApiError::IdempotencyKeyRequired.into_response();
        }
        Ok(None) => return tx::commit_on_success(request, next).await,
        Err(error) => return error.into_response(),
    };
    tracing::Span::current().record("key_digest", tracing::field::display(key.digest()));
    let Some(&account) = request.extensions().get::<Account>() else {
        return ApiError::internal("the idempotency layer runs without authentication")
            .into_response();
    };
    let (mut parts, body) = request.into_parts();
    let bytes = match read_body(Request::from_parts(parts.clone(), body), &state).await {
        Ok(bytes) => bytes,
        Err(error) => return error.into_response(),
    };
    let (fingerprint, json) = match fingerprint::of_request(&mut parts, &bytes).await {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    let (method, path) = (parts.method.clone(), parts.uri.path().to_owned());
    let mut request = Request::from_parts(parts, Body::from(bytes));
    if let Some(json) = json {
        request.extensions_mut().insert(JsonBody(json));
    }

    let keyed = Keyed {
        state: &state,
        account,
        key: &key,
        request: RequestLine {
            method: method.as_str(),
            path: &path,
        },
        fingerprint,
    };
    keyed
        .run(request, next)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Whether `response` is an outcome of the endpoint, which its key stores: neither the rejection of a request the
/// endpoint never ran nor a failure that is not stored ([`ApiError::is_stored`]).
pub fn is_outcome(response: &Response) -> bool {
    let extensions = response.extensions();
    extensions.get::<NotRun>().is_none() && extensions.get::<NotStored>().is_none()
}

/// What the key row says about a request.
enum KeyRow {
    /// A live row answers: its stored response again.
    Answers(Response),
    /// An expired row, which this request takes over if it stores an outcome.
    Expired,
    /// No row: the key is new.
    Absent,
}

/// One keyed request.
struct Keyed<'a> {
    state: &'a AppState,
    account: Account,
    key: &'a IdempotencyKey,
    /// Stored with the outcome, for inspection.
    request: RequestLine<'a>,
    fingerprint: Fingerprint,
}

impl Keyed<'_> {
    async fn run(&self, request: Request, next: Next) -> Result<Response, ApiError> {
        let config = &self.state.config.idempotency;
        let _turn = self
            .state
            .key_locks
            .acquire(self.account.id, self.key.as_str(), config.wait_timeout)
            .await
            .ok_or_else(|| {
                self.count(Outcome::Conflicted);
                ApiError::IdempotencyKeyInUse
            })?;
        // The key is looked up before the transaction begins, on the connection it then begins on: a replay costs
        // one statement, and a new key no more than a lookup inside the transaction would. Whatever commits the
        // key meanwhile, the insert of the key row finds (step 5).
        let mut conn = self
            .state
            .metrics
            .waiting_for(self.state.pool.acquire())
            .await?;
        let takes_over = match self.key_row(&mut *conn).await? {
            KeyRow::Answers(answer) => return Ok(answer),
            KeyRow::Expired => true,
            KeyRow::Absent => false,
        };
        let tx = self.state.begin.begin_on(conn).await?;

        let slot = TxSlot::default();
        slot.put(tx);
        let mut request = request;
        request.extensions_mut().insert(slot.clone());
        // A handler that panics answers 500 (`api::router`), after its `Tx` put the transaction back.
        let response = next.run(request).await;
        let tx = slot
            .take()
            .ok_or_else(|| ApiError::internal("the request's transaction was not given back"))?;
        if !is_outcome(&response) {
            // Rejected before the endpoint ran, its content broke a rule, or a passing condition stopped it: a
            // retry with the same key may run it.
            return Ok(tx::finish(Some(tx), response).await);
        }
        let (stored, response) = capture(response).await?;

        if response.status().is_success() {
            return match self.commit_with_key(tx, &stored).await {
                Ok(true) => {
                    self.count_executed(takes_over);
                    Ok(response)
                }
                Ok(false) => self.answer_for_taken_key().await,
                // Nothing committed, or the commit's fate is unknown: a retry finds the row or runs anew.
                Err(error) if !error.is_stored() => Err(error),
                Err(error) => {
                    let (stored, response) = capture(error.into_response()).await?;
                    self.store_alone(&stored, response, takes_over).await
                }
            };
        }
        tx.rollback().await?;
        self.store_alone(&stored, response, takes_over).await
    }

    /// Reads the key row: a live one answers with its response, or 422 when it was stored for another request.
    async fn key_row(&self, db: impl PgExecutor<'_>) -> Result<KeyRow, ApiError> {
        let found = db::idempotency_keys::find(db, self.account.id, self.key.as_str()).await?;
        match found {
            Some(row) if !row.expired => {
                if row.fingerprint != self.fingerprint.0 {
                    self.count(Outcome::Mismatched);
                    return Err(ApiError::IdempotencyKeyReused);
                }
                tracing::debug!("replaying the stored response");
                self.count(Outcome::Replayed);
                Ok(KeyRow::Answers(replay(row.response)))
            }
            Some(_) => {
                tracing::debug!("the key expired: running the request and taking the key over");
                Ok(KeyRow::Expired)
            }
            None => Ok(KeyRow::Absent),
        }
    }

    /// Writes the key row into the endpoint's transaction and commits both; `Ok(false)` when a live row holds the key.
    async fn commit_with_key(
        &self,
        mut tx: Transaction<'static, Postgres>,
        stored: &StoredResponse,
    ) -> Result<bool, ApiError> {
        if !self.insert(&mut tx, stored).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await.map_err(ApiError::from_commit)?;
        Ok(true)
    }

    /// Stores a failure in a transaction of its own, after the endpoint's transaction rolled back.
    async fn store_alone(
        &self,
        stored: &StoredResponse,
        response: Response,
        takes_over: bool,
    ) -> Result<Response, ApiError> {
        let mut tx = self.begin().await?;
        match self.insert(&mut tx, stored).await {
            Ok(true) => {
                tx.commit().await.map_err(ApiError::from_commit)?;
                self.count_executed(takes_over);
                Ok(response)
            }
            Ok(false) => {
                tx.rollback().await?;
                self.answer_for_taken_key().await
            }
            Err(error) if !error.is_stored() => Err(error),
            Err(error) => {
                tracing::error!(%error, "the failure could not be stored for its key");
                Ok(response)
            }
        }
    }

    /// Inserts or takes over the key row, to live `IDEMPOTENCY_KEY_TTL_SECONDS` from now; waiting on a concurrent
    /// holder is bounded by `lock_timeout`.
    async fn insert(
        &self,
        conn: &mut PgConnection,
        stored: &StoredResponse,
    ) -> Result<bool, ApiError> {
        let ttl = self.state.config.idempotency.key_ttl;
        db::idempotency_keys::insert(
            conn,
            self.account.id,
            self.key.as_str(),
            self.request,
            &self.fingerprint.0,
            stored,
            ttl,
        )
        .await
        .map_err(|error| match ApiError::from(error) {
            // The lock is the key row of a concurrent request with the same key.
            ApiError::ResourceBusy => {
                self.count(Outcome::Conflicted);
                ApiError::IdempotencyKeyInUse
            }
            error => error,
        })
    }

    /// Another server committed the key while this request ran: answer as that request did.
    async fn answer_for_taken_key(&self) -> Result<Response, ApiError> {
        tracing::debug!("another request stored this key first; rolled back");
        match self.key_row(&self.state.pool).await? {
            KeyRow::Answers(answer) => Ok(answer),
            KeyRow::Expired | KeyRow::Absent => {
                Err(ApiError::internal("the key row vanished after a conflict"))
            }
        }
    }

    /// A transaction on a pooled connection, counted among the pool's waiters until it has one.
    async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let pool = &self.state.pool;
        self.state
            .metrics
            .waiting_for(self.state.begin.begin(pool))
            .await
    }

    /// Counts how the request ended, and writes it on the request's span (once: a field recorded twice shows twice).
    fn count(&self, outcome: Outcome) {
        self.state.metrics.idempotency(outcome);
        tracing::Span::current().record("idempotency", tracing::field::display(outcome.as_str()));
    }

    /// The endpoint ran and its outcome is stored; `takes_over` when that replaced an expired key row, which the
    /// span names as the more telling of the two.
    fn count_executed(&self, takes_over: bool) {
        if takes_over {
            self.state.metrics.idempotency(Outcome::Executed);
            self.count(Outcome::ExpiredRetaken);
        } else {
            self.count(Outcome::Executed);
        }
    }
}
