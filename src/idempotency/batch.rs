//! Many keyed requests at once: the rows of an order batch, each exactly one keyed request, taken a chunk per
//! transaction.
//!
//! Each row is a request with its own key and fingerprint, and ends as the [`layer`](super::layer) would end it: a
//! live key row answers (its response again, or 422 for another fingerprint); otherwise the endpoint runs, and its
//! outcome is stored with the key in the same transaction as its write. A chunk does for many rows in a few
//! statements what the layer does for one request, so that a file of thousands of rows costs a few round trips per
//! chunk rather than several per row. A dry run ([`dry_run`]) decides each row by the same rule, writing nothing.

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

    /// Answers the rows given by index as [`answer`](Self::answer) would, writing nothing: for [`dry_run`].
    fn check(
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
        match decide(found.remove(&row.key), &row.fingerprint) {
            Decision::Replay(response) => {
                state.metrics.idempotency(Outcome::Replayed);
                outcomes[index] = Some(RowOutcome {
                    response,
                    replayed: true,
                });
            }
            Decision::Reused => {
                state.metrics.idempotency(Outcome::Mismatched);
                outcomes[index] = Some(reused().await?);
            }
            Decision::Run { takes_over } => {
                taking_over += usize::from(takes_over);
                to_run.push(index);
            }
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

/// What [`run_chunk`] would make of each of `rows`, in order, writing nothing: a dry run of a whole batch.
///
/// Keys may repeat, as in a file: a later row finds the outcome an earlier one would have stored, as the next chunk
/// finds it stored. The rows that may run (no live key row) are checked in one go, before the rows are decided.
pub async fn dry_run<E>(
    state: &AppState,
    account_id: Uuid,
    rows: &[KeyedRow],
    mut endpoint: E,
) -> Result<Vec<RowOutcome>, ApiError>
where
    E: RowEndpoint,
{
    let mut tx = state
        .metrics
        .waiting_for(state.begin.begin(&state.pool))
        .await?;
    let keys: Vec<String> = rows.iter().map(|row| row.key.clone()).collect();
    let mut stored: HashMap<String, StoredKey> =
        idempotency_keys::find_many(&mut *tx, account_id, &keys)
            .await?
            .into_iter()
            .collect();
    let may_run: Vec<usize> = (0..rows.len())
        .filter(|&index| stored.get(&rows[index].key).is_none_or(|key| key.expired))
        .collect();
    let answers = endpoint.check(&mut tx, &may_run).await?;
    tx.rollback().await?;
    if answers.len() != may_run.len() {
        return Err(ApiError::internal(
            "the endpoint answered another number of rows",
        ));
    }
    let mut answers: HashMap<usize, Response> = may_run.into_iter().zip(answers).collect();
    let mut outcomes = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let outcome = match decide(stored.get(&row.key).cloned(), &row.fingerprint) {
            Decision::Replay(response) => RowOutcome {
                response,
                replayed: true,
            },
            Decision::Reused => reused().await?,
            Decision::Run { .. } => {
                let answer = answers
                    .remove(&index)
                    .ok_or_else(|| ApiError::internal("a row that may run was not checked"))?;
                if is_outcome(&answer) {
                    let (response, _) = capture(answer).await?;
                    let key = StoredKey {
                        fingerprint: row.fingerprint.0.to_vec(),
                        expired: false,
                        response: response.clone(),
                    };
                    stored.insert(row.key.clone(), key);
                    RowOutcome {
                        response,
                        replayed: false,
                    }
                } else {
                    not_stored(answer).await?
                }
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// What a key row decides for a row with `fingerprint`, in a chunk and in its dry run alike.
enum Decision {
    /// A live row of the same request: its outcome again.
    Replay(StoredResponse),
    /// A live row of another request: 422, not stored.
    Reused,
    /// No live row: the endpoint runs, and `takes_over` an expired row when it stores an outcome.
    Run { takes_over: bool },
}

fn decide(stored: Option<StoredKey>, fingerprint: &Fingerprint) -> Decision {
    match stored {
        Some(stored) if !stored.expired => {
            if stored.fingerprint == fingerprint.0 {
                Decision::Replay(stored.response)
            } else {
                Decision::Reused
            }
        }
        Some(_) => Decision::Run { takes_over: true },
        None => Decision::Run { takes_over: false },
    }
}

async fn reused() -> Result<RowOutcome, ApiError> {
    not_stored(ApiError::IdempotencyKeyReused.into_response()).await
}

async fn not_stored(response: Response) -> Result<RowOutcome, ApiError> {
    let (response, _) = capture(response).await?;
    Ok(RowOutcome {
        response,
        replayed: false,
    })
}
