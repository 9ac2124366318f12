//! A batch's dry run (`validate_only=true`): every row decided as taking the batch would, nothing written.

use axum::{
    Json,
    response::{IntoResponse, Response},
};

use super::{
    OrderBatchValidation,
    prepare::PreparedRow,
    rows::{CreateOrders, keyed_rows, row_results},
};
use crate::{
    domain::batch::BatchCounts, http::auth::Account, http::error::ApiError,
    idempotency::batch::dry_run, state::AppState,
};

/// Checks every row as [`take`](super::take::take) would run it, and answers the report; reads, and writes nothing.
pub async fn validate_only(
    state: &AppState,
    account: Account,
    rows: &[PreparedRow],
) -> Result<Response, ApiError> {
    let runnable: Vec<&PreparedRow> = rows.iter().filter(|row| row.run.is_ok()).collect();
    let endpoint = CreateOrders {
        account,
        rows: &runnable,
    };
    let outcomes = dry_run(state, account.id, &keyed_rows(&runnable), endpoint).await?;
    let results = row_results(rows, outcomes)?;
    Ok(Json(OrderBatchValidation {
        counts: BatchCounts::of(&results),
        results,
    })
    .into_response())
}
