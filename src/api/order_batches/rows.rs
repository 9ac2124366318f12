//! A batch row as the `POST /v1/orders` it stands for: checked, written, and what became of it.

use std::collections::{HashMap, HashSet};

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::prepare::PreparedRow;
use crate::{
    api::orders::{CreateOrder, check_order},
    db::{self, template_versions::VersionForOrder},
    domain::{batch::RowResult, order::NewOrder},
    http::auth::Account,
    http::error::{ApiError, Rejection},
    http::extract::{Validate, deserialize},
    http::response::Created,
    idempotency::batch::{KeyedRow, RowEndpoint, RowOutcome},
};

/// The key and fingerprint of each row that runs, in order.
pub fn keyed_rows(runnable: &[&PreparedRow]) -> Vec<KeyedRow> {
    runnable
        .iter()
        .filter_map(|row| {
            let (_, fingerprint) = row.run.as_ref().ok()?;
            Some(KeyedRow {
                key: row.idempotency_key.clone()?,
                fingerprint: *fingerprint,
            })
        })
        .collect()
}

/// The result of each row, in order: the outcome of a row that ran, in turn, or why it could not run.
pub fn row_results(
    rows: &[PreparedRow],
    outcomes: Vec<RowOutcome>,
) -> Result<Vec<RowResult>, ApiError> {
    let mut outcomes = outcomes.into_iter();
    rows.iter()
        .map(|row| match &row.run {
            Ok(_) => {
                let outcome = outcomes
                    .next()
                    .ok_or_else(|| ApiError::internal("a row that ran has no outcome"))?;
                Ok(row_result(row, outcome))
            }
            Err(error) => failed_row(row, error),
        })
        .collect()
}

/// `POST /v1/orders` for rows of a batch.
pub struct CreateOrders<'a> {
    pub account: Account,
    pub rows: &'a [&'a PreparedRow],
}

impl CreateOrders<'_> {
    /// The bodies of the rows given by index, in that order.
    fn bodies<'b>(&'b self, rows: &'b [usize]) -> impl Iterator<Item = &'b Value> {
        rows.iter()
            .filter_map(|&i| self.rows.get(i)?.run.as_ref().ok().map(|(body, _)| body))
    }
}

impl RowEndpoint for CreateOrders<'_> {
    /// Writes the orders that pass in one statement.
    async fn answer(
        &mut self,
        conn: &mut PgConnection,
        rows: &[usize],
    ) -> Result<Vec<Response>, ApiError> {
        let Checked {
            mut answers,
            orders,
        } = check_orders(conn, self.account, self.bodies(rows)).await?;
        let new_orders: Vec<(i32, &NewOrder)> = orders
            .iter()
            .map(|(_, order, template_version)| (*template_version, order))
            .collect();
        let written = db::orders::insert_many(conn, self.account.id, &new_orders).await?;
        if written.len() != new_orders.len() {
            return Err(ApiError::internal(
                "not every order of the chunk was inserted",
            ));
        }
        for ((index, ..), order) in orders.iter().zip(written) {
            answers[*index] = Some(Created::at(order.location(), order).into_response());
        }
        every_row_answered(answers)
    }

    /// Answers 201 without a body for an order that passes.
    async fn check(
        &mut self,
        conn: &mut PgConnection,
        rows: &[usize],
    ) -> Result<Vec<Response>, ApiError> {
        let Checked {
            mut answers,
            orders,
        } = check_orders(conn, self.account, self.bodies(rows)).await?;
        for (index, ..) in orders {
            answers[index] = Some(StatusCode::CREATED.into_response());
        }
        every_row_answered(answers)
    }
}

/// Bodies checked as `POST /v1/orders` checks each, up to its write.
struct Checked {
    /// The answer of each body that failed, by its index; `None` for the others.
    answers: Vec<Option<Response>>,
    /// Each body that passed: its index, the order, and the template version it is taken at.
    orders: Vec<(usize, NewOrder, i32)>,
}

/// Checks each of `bodies` as `POST /v1/orders` would, in the same order (the body's rules, then
/// [`check_order`]), against the latest versions of their templates, which stay locked until the transaction ends.
async fn check_orders(
    conn: &mut PgConnection,
    account: Account,
    bodies: impl Iterator<Item = &Value>,
) -> Result<Checked, ApiError> {
    let mut answers = Vec::new();
    let mut valid = Vec::new();
    for (index, body) in bodies.enumerate() {
        match deserialize::<CreateOrder>(body).and_then(Validate::validate) {
            // Rejected before the endpoint ran, like a body that fails `ValidJson`: not stored with the key.
            Err(error) => answers.push(Some(Rejection(error).into_response())),
            Ok(order) => {
                answers.push(None);
                valid.push((index, order));
            }
        }
    }
    let template_ids: Vec<Uuid> = valid
        .iter()
        .map(|(_, order)| order.template_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let templates = latest_versions(conn, account, &template_ids).await?;
    let mut orders = Vec::with_capacity(valid.len());
    for (index, order) in valid {
        match check_order(&order, templates.get(&order.template_id)) {
            Ok(template_version) => orders.push((index, order, template_version)),
            Err(error) => answers[index] = Some(error.into_response()),
        }
    }
    Ok(Checked { answers, orders })
}

fn every_row_answered(answers: Vec<Option<Response>>) -> Result<Vec<Response>, ApiError> {
    answers
        .into_iter()
        .map(|answer| answer.ok_or_else(|| ApiError::internal("a row has no answer")))
        .collect()
}

/// The latest version of each template, by template id; the templates stay locked against changes and deletion
/// until the transaction ends, so every order of the chunk is taken against the version read here.
async fn latest_versions(
    conn: &mut PgConnection,
    account: Account,
    template_ids: &[Uuid],
) -> Result<HashMap<Uuid, VersionForOrder>, ApiError> {
    db::templates::lock_many(&mut *conn, account.id, template_ids).await?;
    Ok(
        db::template_versions::find_many_for_order(conn, account.id, template_ids)
            .await?
            .into_iter()
            .collect(),
    )
}

/// The order id of a stored 2xx answer, or the problem document of a failure.
#[derive(Deserialize)]
struct AnsweredOrder {
    id: Uuid,
}

fn row_result(row: &PreparedRow, outcome: RowOutcome) -> RowResult {
    let status = outcome.response.status;
    let body = &outcome.response.body;
    let success = (200..300).contains(&status);
    RowResult {
        row: row.row,
        line: row.line,
        idempotency_key: row.idempotency_key.clone(),
        status,
        order_id: success
            .then(|| {
                serde_json::from_slice::<AnsweredOrder>(body)
                    .ok()
                    .map(|o| o.id)
            })
            .flatten(),
        replayed: outcome.replayed,
        error: (!success)
            .then(|| serde_json::from_slice(body).ok())
            .flatten(),
    }
}

fn failed_row(row: &PreparedRow, error: &ApiError) -> Result<RowResult, ApiError> {
    let status = error.status().as_u16();
    Ok(RowResult {
        row: row.row,
        line: row.line,
        idempotency_key: row.idempotency_key.clone(),
        status,
        order_id: None,
        replayed: false,
        error: Some(serde_json::to_value(error.to_problem()).map_err(ApiError::internal)?),
    })
}
