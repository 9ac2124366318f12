//! Many keyed requests at once: the rows of an order batch, each exactly one keyed request, taken a chunk per
//! transaction.
//!
//! Each row is a request with its own key and fingerprint, and ends as the [`layer`](super::layer) would end it: a
//! live key row answers (its response again, or 422 for another fingerprint); otherwise the endpoint runs, and its
//! outcome is stored with the key in the same transaction as its write. A chunk does for many rows in a few
//! statements what the layer does for one request, so that a file of thousands of rows costs a few round trips per
//! chunk rather than several per row.

use std::collections::HashMap;

use axum::response::{IntoResponse, Response};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use super::{fingerprint::Fingerprint, layer::is_outcome, replay::capture};
use crate::{
    db::idempotency_keys::{self, NewKey, StoredKey, StoredResponse},
    http::error::ApiError,
    metrics::Outcome,
    state::AppState,
};

/// The endpoint the rows of a chunk stand for.
pub trait RowEndpoint: Send {
    /// Answers the rows given by index, in that order, as the endpoint would answer each single request, writing in
    /// `conn`; a rejection before the endpoint ran ([`crate::http::error::Rejection`]) is not stored, as in the layer.
    fn answer(
        &mut self,
        conn: &mut PgConnection,
        rows: &[usize],
    ) -> impl Future<Output = Result<Vec<Response>, ApiError>> + Send;
}

/// One row: a request with this key and fingerprint. The keys of a chunk are distinct.
#[derive(Debug, Clone)]
pub struct KeyedRow {
    pub key: String,
    pub fingerprint: Fingerprint,
}

/// How a row ended.
#[derive(Debug, Clone)]
pub struct RowOutcome {
    /// What the request would have been answered, byte for byte.
    pub response: StoredResponse,
    /// The key already had an outcome, and this is it.
    pub replayed: bool,
}

/// Runs a chunk of rows: answers those whose key has a live row, runs `endpoint` for the others in one
/// transaction, and stores their outcomes with their keys in it.
///
/// Gives back the transaction, for the caller's own
/// writes, and the outcome of every row; the caller commits. An error of the chunk as a whole (the database) is
/// the caller's to answer: nothing of the chunk was written.
pub async fn run_chunk<E>(
    state: &AppState,
    account_id: Uuid,
    rows: &[KeyedRow],
    mut endpoint: E,
) -> Result<(Transaction<'static, Postgres>, Vec<RowOutcome>), ApiError>
where
    E: RowEndpoint,
{
    // A run that loses a key to a concurrent request turns that key into a replay for the next run: so the chunk
    // ends within one run more than it has keys, and in practice within two or three.
    for _ in 0..=rows.len() {
        let mut tx = state
            .metrics
            .waiting_for(state.begin.begin(&state.pool))
            .await?;
        if let Some(outcomes) = run_once(state, account_id, rows, &mut tx, &mut endpoint).await? {
            return Ok((tx, outcomes));
        }
        tx.rollback().await?;
    }
    state.metrics.idempotency(Outcome::Conflicted);
    Err(ApiError::IdempotencyKeyInUse)
}

/// One run of a chunk; `None` when a concurrent request stored one of its keys first, and the chunk must run again.
async fn run_once<E>(
    state: &AppState,
    account_id: Uuid,
    rows: &[KeyedRow],
    conn: &mut PgConnection,
    endpoint: &mut E,
) -> Result<Option<Vec<RowOutcome>>, ApiError>
where
    E: RowEndpoint,
{
    let ttl = state.config.idempotency.key_ttl;
    let keys: Vec<String> = rows.iter().map(|row| row.key.clone()).collect();
    let mut found: HashMap<String, StoredKey> =
        idempotency_keys::find_many(&mut *conn, account_id, &keys)
            .await?
            .into_iter()
            .collect();
    let mut outcomes: Vec<Option<RowOutcome>> = vec![None; rows.len()];
    let mut to_run = Vec::new();
    let mut taking_over = 0;
    for (index, row) in rows.iter().enumerate() {
        match found.remove(&row.key) {
            Some(stored) if !stored.expired => {
                outcomes[index] = Some(if stored.fingerprint == row.fingerprint.0 {
                    state.metrics.idempotency(Outcome::Replayed);
                    RowOutcome {
                        response: stored.response,
                        replayed: true,
                    }
                } else {
                    state.metrics.idempotency(Outcome::Mismatched);
                    not_stored(ApiError::IdempotencyKeyReused.into_response()).await?
                });
            }
            Some(_) => {
                taking_over += 1;
                to_run.push(index);
            }
            None => to_run.push(index),
        }
    }

    let responses = endpoint.answer(&mut *conn, &to_run).await?;
    if responses.len() != to_run.len() {
        return Err(ApiError::internal(
            "the endpoint answered another number of rows",
        ));
    }
    let mut new_keys = Vec::with_capacity(to_run.len());
    for (&index, response) in to_run.iter().zip(responses) {
        if is_outcome(&response) {
            let (stored, _) = capture(response).await?;
            new_keys.push((index, stored));
        } else {
            outcomes[index] = Some(not_stored(response).await?);
        }
    }
    let to_store: Vec<NewKey<'_>> = new_keys
        .iter()
        .map(|(index, response)| NewKey {
            key: &rows[*index].key,
            fingerprint: &rows[*index].fingerprint.0,
            response,
        })
        .collect();
    let stored = idempotency_keys::insert_many(conn, account_id, &to_store, ttl)
        .await
        .map_err(|error| match ApiError::from(error) {
            // The lock is the key row of a concurrent request with one of the keys.
            ApiError::ResourceBusy => {
                state.metrics.idempotency(Outcome::Conflicted);
                ApiError::IdempotencyKeyInUse
            }
            error => error,
        })?;
    if stored.len() != to_store.len() {
        tracing::debug!("another request stored a key of the chunk first; running it again");
        return Ok(None);
    }
    for _ in 0..new_keys.len() {
        state.metrics.idempotency(Outcome::Executed);
    }
    for _ in 0..taking_over {
        state.metrics.idempotency(Outcome::ExpiredRetaken);
    }
    for (index, response) in new_keys {
        outcomes[index] = Some(RowOutcome {
            response,
            replayed: false,
        });
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.ok_or_else(|| ApiError::internal("a row of the chunk has no outcome"))
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

async fn not_stored(response: Response) -> Result<RowOutcome, ApiError> {
    let (response, _) = capture(response).await?;
    Ok(RowOutcome {
        response,
        replayed: false,
    })
}
