//! Taking a batch: its rows in chunks, each chunk through the exactly-once path in a transaction of its own.

use std::collections::HashSet;

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{
    FIRST_PAGE, OrderBatchWithResults, location,
    prepare::{Prepared, PreparedRow},
    rows::{CreateOrders, keyed_rows, row_results},
};
use crate::{
    api::list::List,
    db,
    domain::batch::BatchCounts,
    http::auth::Account,
    http::error::ApiError,
    idempotency::{batch::run_chunk, tx::Tx},
    state::AppState,
};

/// The chunks of a batch in file order: at most `chunk_rows` rows that run, with distinct keys. A key seen again
/// starts the next chunk, so that the later row finds the earlier one's outcome stored, as a retry would.
///
/// Each chunk costs about six round trips whatever its size; larger chunks hold their key rows and templates
/// locked longer, making a concurrent request with one of their keys wait, and lose more work to a crash.
fn chunks(rows: &[PreparedRow], chunk_rows: usize) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut keys = HashSet::new();
    for (index, row) in rows.iter().enumerate() {
        if row.run.is_err() {
            continue;
        }
        let key = row.idempotency_key.as_deref().unwrap_or_default();
        if keys.len() == chunk_rows || keys.contains(key) {
            chunks.push(start..index);
            start = index;
            keys.clear();
        }
        keys.insert(key);
    }
    chunks.push(start..rows.len());
    chunks
}

/// Takes every row, a chunk per transaction, and records the results; the batch completes in the request's
/// transaction, which stores the batch's own key with it.
pub async fn take(
    state: &AppState,
    account: Account,
    mut tx: Tx,
    prepared: &Prepared,
) -> Result<Response, ApiError> {
    let row_count = i32::try_from(prepared.rows.len()).unwrap_or(i32::MAX);
    let batch = {
        let mut start = state
            .metrics
            .waiting_for(state.begin.begin(&state.pool))
            .await?;
        let batch = db::order_batches::start(
            &mut start,
            account.id,
            prepared.batch_key.as_deref(),
            row_count,
        )
        .await?;
        start.commit().await?;
        batch
    };
    let mut first_page = Vec::with_capacity(FIRST_PAGE + 1);
    for range in chunks(&prepared.rows, state.config.batches.chunk_rows) {
        let chunk = &prepared.rows[range];
        let runnable: Vec<&PreparedRow> = chunk.iter().filter(|row| row.run.is_ok()).collect();
        let endpoint = CreateOrders {
            account,
            rows: &runnable,
        };
        let (mut chunk_tx, outcomes) =
            run_chunk(state, account.id, &keyed_rows(&runnable), endpoint).await?;
        let results = row_results(chunk, outcomes)?;
        db::order_batches::insert_rows(&mut chunk_tx, account.id, batch.id, &results).await?;
        chunk_tx.commit().await?;
        state.metrics.batch_rows(&BatchCounts::of(&results));
        let room = (FIRST_PAGE + 1).saturating_sub(first_page.len());
        first_page.extend(results.into_iter().take(room));
    }
    let batch = db::order_batches::complete(tx.conn().await?, account.id, batch.id).await?;
    let has_more = first_page.len() > FIRST_PAGE;
    first_page.truncate(FIRST_PAGE);
    // A batch carries no entity tag: it is not changed after it was taken, and no request is conditional on it.
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location(batch.id))],
        Json(OrderBatchWithResults {
            batch,
            results: List {
                data: first_page,
                has_more,
            },
        }),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::idempotency::fingerprint::Fingerprint;

    fn row(row: i32, key: &str, runs: bool) -> PreparedRow {
        PreparedRow {
            row,
            line: None,
            idempotency_key: Some(key.to_owned()),
            run: if runs {
                Ok((Value::Null, Fingerprint([0; 32])))
            } else {
                Err(Box::new(ApiError::IdempotencyKeyReused))
            },
        }
    }

    #[test]
    fn a_repeated_key_starts_a_new_chunk() {
        let rows = vec![
            row(1, "a", true),
            row(2, "b", true),
            row(3, "a", true),
            row(4, "a", false),
            row(5, "c", true),
        ];
        assert_eq!(chunks(&rows, 10), vec![0..2, 2..5]);
    }

    #[test]
    fn chunks_hold_at_most_chunk_rows_keys() {
        let rows: Vec<_> = (0..7).map(|i| row(i + 1, &i.to_string(), true)).collect();
        let sizes: Vec<_> = chunks(&rows, 3).into_iter().map(|r| r.len()).collect();
        assert_eq!(sizes, [3, 3, 1]);
    }
}
