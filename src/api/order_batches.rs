//! `/v1/order_batches`: a file of orders (CSV or JSON), every row taken exactly once, and what became of each row.
//!
//! A batch row is exactly a `POST /v1/orders` with the row's `Idempotency-Key` and the row as its body: the same
//! validation, the same fingerprint, the same stored response in the same key table, the same replay. Rows are
//! taken `BATCH_CHUNK_ROWS` per transaction (`idempotency::batch`).

use std::collections::{HashMap, HashSet};

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use utoipa::{IntoParams, ToSchema, openapi::Object};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    list::{self, Filter, List, ListOrder, ListQuery, Listed, OrderBatchList, RowResultList},
    orders::CreateOrder,
    problems,
};
use crate::{
    db::{self, PageRequest, orders::NewOrderRow, template_versions::VersionForOrder},
    domain::{
        batch::{BatchCounts, BatchRow, KeyFrom, OrderBatch, RowResult, json_rows, parse_csv},
        id::parse_id,
        order::{NewOrder, missing_merge_variables},
        validation::Validator,
    },
    http::auth::Account,
    http::body::{JsonBody, is_csv, read_body, sends_json},
    http::error::{ApiError, Rejection},
    http::extract::{PathId, Resource, ValidQuery, Validate, deserialize},
    http::response::Created,
    idempotency::{
        batch::{KeyedRow, RowEndpoint, RowOutcome, run_chunk},
        fingerprint::Fingerprint,
        key::IdempotencyKey,
        tx::Tx,
    },
    state::AppState,
};

/// Row results in the answer to `POST` and `GET` of a batch; the rest are at `/v1/order_batches/{id}/rows`.
const FIRST_PAGE: usize = 20;

/// The path a batch row stands for.
const ORDERS_PATH: &str = "/v1/orders";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get))
        .routes(routes!(rows))
}

impl Resource for OrderBatch {
    const NAME: &'static str = "order batch";
}

/// A batch as JSON: settings, and the orders, each a `POST /v1/orders` body with an optional `idempotency_key`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "template_id": "019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e",
    "key_from": ["recipient.postal_code", "recipient.house_number"],
    "orders": [{"recipient": {"name": "Anna de Vries", "street": "Keizersgracht", "house_number": "123A",
                              "postal_code": "1015 CJ", "city": "Amsterdam", "country": "NL"},
                "merge_variables": {"first_name": "Anna", "city": "Amsterdam"}}]
}))]
pub struct CreateOrderBatch {
    /// The template of every order that does not name its own.
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    template_id: Option<String>,
    /// The fields each row's key is derived from when it has no `idempotency_key` (see the README for the rule).
    #[serde(default)]
    key_from: Option<Vec<String>>,
    /// 1 to `BATCH_MAX_ROWS` orders: `POST /v1/orders` bodies, each with an optional `idempotency_key` (1 to 255
    /// printable ASCII characters).
    #[schema(value_type = Vec<Object>, min_items = 1)]
    orders: Vec<Value>,
}

/// The settings of a batch in the query string; `template_id` and `key_from` only for a CSV body.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CreateOrderBatchQuery {
    /// CSV only: the template of every row without a `template_id` column value.
    #[param(value_type = Option<Uuid>)]
    template_id: Option<String>,
    /// CSV only: comma-separated fields each row's key is derived from when it has no `idempotency_key`, e.g.
    /// `recipient.postal_code,recipient.house_number`.
    key_from: Option<String>,
    /// `true`: check every row and answer the report, writing nothing.
    #[param(value_type = Option<bool>)]
    validate_only: Option<String>,
}

/// The query's settings, checked.
pub struct BatchSettings {
    template_id: Option<String>,
    key_from: Option<KeyFrom>,
    validate_only: bool,
}

impl Validate for CreateOrderBatchQuery {
    type Valid = BatchSettings;

    fn validate(self) -> Result<BatchSettings, ApiError> {
        let mut v = Validator::new();
        let template_id = v.check("template_id", check_template_id(self.template_id));
        let key_from = v.check(
            "key_from",
            self.key_from
                .as_deref()
                .map(KeyFrom::parse_list)
                .transpose(),
        );
        let validate_only = v.check(
            "validate_only",
            match self.validate_only.as_deref() {
                None | Some("false") => Ok(false),
                Some("true") => Ok(true),
                Some(_) => Err("must be true or false".to_owned()),
            },
        );
        Ok(v.finish(|| {
            Some(BatchSettings {
                template_id: template_id?,
                key_from: key_from?,
                validate_only: validate_only?,
            })
        })?)
    }
}

fn check_template_id(template_id: Option<String>) -> Result<Option<String>, String> {
    if let Some(id) = &template_id {
        parse_id(id)?;
    }
    Ok(template_id)
}

/// A batch body: JSON or CSV.
pub enum BatchBody {
    Json(Value),
    Csv(Bytes),
}

impl FromRequest<AppState> for BatchBody {
    type Rejection = Rejection;

    async fn from_request(mut request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(JsonBody(value)) = request.extensions_mut().remove::<JsonBody>() {
            return Ok(Self::Json(value));
        }
        let headers = request.headers().clone();
        if !is_csv(&headers) && !sends_json(&headers) {
            return Err(ApiError::UnsupportedMediaType(
                "Send a batch as `Content-Type: application/json` or `Content-Type: text/csv`."
                    .to_owned(),
            )
            .into());
        }
        let bytes = read_body(request, state).await?;
        if is_csv(&headers) {
            return Ok(Self::Csv(bytes));
        }
        Ok(Self::Json(crate::http::body::parse_json(&headers, &bytes)?))
    }
}

/// A batch and the first page of its row results.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderBatchWithResults {
    #[serde(flatten)]
    batch: OrderBatch,
    /// The first row results, in file order; the rest are at `/v1/order_batches/{id}/rows`.
    #[schema(value_type = RowResultList)]
    results: List<RowResult>,
}

/// What a batch would do (`validate_only=true`): nothing was written.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderBatchValidation {
    /// `created` counts the rows that would become orders.
    counts: BatchCounts,
    /// Every row, in file order; a row that would become an order has status 201 and no `order_id`.
    results: Vec<RowResult>,
}

/// Create an order batch
///
/// Takes every row as a `POST /v1/orders` with the row's `Idempotency-Key` and the row as its body: a row whose key
/// was used in the last 24 hours (earlier in the file, in an earlier batch, or by a single POST) gets that outcome
/// again instead of a second order, and with other content fails with `idempotency-key-reused`. A bad row fails
/// alone. Send `application/json`, or `text/csv` with a header row of the columns `idempotency_key`, `template_id`,
/// `recipient.<member>`, `sender.<member>`, `send_date`, `merge_variables.<field>`, `metadata.<key>` and the
/// settings in the query string.
#[utoipa::path(
    post,
    path = "/v1/order_batches",
    operation_id = "createOrderBatch",
    tag = "order_batches",
    params(CreateOrderBatchQuery),
    request_body(
        description = "The orders, as JSON or as CSV (RFC 4180, UTF-8, optional BOM).",
        content(
            (CreateOrderBatch = "application/json"),
            (String = "text/csv", example = "idempotency_key,recipient.name,recipient.street,recipient.house_number,recipient.postal_code,recipient.city,recipient.country\ncustomer-4711,Anna de Vries,Keizersgracht,123A,1015 CJ,Amsterdam,NL\n"),
        )
    ),
    responses(
        (status = 200, description = "`validate_only=true`: what the batch would do; nothing was written.",
         body = OrderBatchValidation),
        (status = 201, description = "Every row was taken; each row's result says how.", body = OrderBatchWithResults,
         headers(("Location" = String, description = "The batch's URL."))),
        (status = 400, response = problems::BadRequest),
        (status = 401, response = problems::Unauthorized),
        (status = 413, response = problems::PayloadTooLarge),
        (status = 415, response = problems::UnsupportedMediaType),
        (status = 422, response = problems::UnprocessableEntity),
        (status = 500, response = problems::InternalError),
        (status = 503, response = problems::ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    account: Account,
    headers: HeaderMap,
    tx: Tx,
    ValidQuery(settings): ValidQuery<CreateOrderBatchQuery>,
    body: BatchBody,
) -> Response {
    let prepared = match prepare(&state, &headers, settings, body) {
        Ok(prepared) => prepared,
        // The file was refused as a whole before any row ran: a corrected file may use the same batch key.
        Err(error) => return Rejection(error).into_response(),
    };
    let answer = if prepared.validate_only {
        validate_only(&state, account, &prepared.rows).await
    } else {
        take(&state, account, tx, &prepared).await
    };
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// A batch, read and checked as a whole, with every row ready to run or failed already.
struct Prepared {
    rows: Vec<PreparedRow>,
    batch_key: Option<String>,
    validate_only: bool,
}

struct PreparedRow {
    row: i32,
    idempotency_key: Option<String>,
    /// The row's body and fingerprint, or the answer of a row that cannot run (no usable key, no order body).
    run: Result<(Value, Fingerprint), Box<ApiError>>,
}

fn prepare(
    state: &AppState,
    headers: &HeaderMap,
    settings: BatchSettings,
    body: BatchBody,
) -> Result<Prepared, ApiError> {
    let max_rows = state.config.batches.max_rows;
    let (rows, key_from) = match body {
        BatchBody::Csv(bytes) => {
            let rows = parse_csv(&bytes, settings.template_id.as_deref(), max_rows)
                .map_err(|e| ApiError::Validation(e.0))?;
            (rows, settings.key_from)
        }
        BatchBody::Json(value) => {
            if settings.template_id.is_some() || settings.key_from.is_some() {
                return Err(ApiError::invalid_field(
                    "template_id",
                    "give template_id and key_from in the JSON body, not in the query string",
                ));
            }
            let batch: CreateOrderBatch = deserialize(&value)?;
            let mut v = Validator::new();
            let template_id = v.check("template_id", check_template_id(batch.template_id));
            let key_from = v.check("key_from", batch.key_from.map(KeyFrom::parse).transpose());
            let (template_id, key_from) = v.finish(|| Some((template_id?, key_from?)))?;
            let rows = json_rows(batch.orders, template_id.as_deref(), max_rows)
                .map_err(|e| ApiError::Validation(e.0))?;
            (rows, key_from)
        }
    };
    let batch_key = IdempotencyKey::from_headers(headers)?.map(|key| key.as_str().to_owned());
    let rows = rows
        .into_iter()
        .map(|row| prepare_row(row, key_from.as_ref(), batch_key.as_deref()))
        .collect();
    Ok(Prepared {
        rows,
        batch_key,
        validate_only: settings.validate_only,
    })
}

/// The row's key (its own, or derived) and its fingerprint as a `POST /v1/orders`.
fn prepare_row(row: BatchRow, key_from: Option<&KeyFrom>, batch_key: Option<&str>) -> PreparedRow {
    let number = row.row;
    let body = match row.body {
        Ok(body) => body,
        Err(errors) => {
            return PreparedRow {
                row: number,
                idempotency_key: row.idempotency_key,
                run: Err(Box::new(ApiError::Validation(errors))),
            };
        }
    };
    let key = match (row.idempotency_key, key_from) {
        (Some(given), _) => IdempotencyKey::parse(given.as_bytes())
            .map(|key| key.as_str().to_owned())
            .map_err(|error| (Some(given), error)),
        (None, Some(key_from)) => key_from
            .derive(&body)
            .map_err(|error| (None, ApiError::Validation(vec![error]))),
        (None, None) => Err((
            None,
            ApiError::invalid_field(
                "idempotency_key",
                "every row needs a key: give the row an idempotency_key, or the batch key_from",
            ),
        )),
    };
    let key = match key {
        Ok(key) if Some(key.as_str()) == batch_key => Err((
            Some(key),
            ApiError::InvalidIdempotencyKey(
                "a row cannot use the batch request's own key".to_owned(),
            ),
        )),
        key => key,
    };
    match key {
        Ok(key) => {
            let fingerprint = Fingerprint::of(&Method::POST, ORDERS_PATH, &body);
            PreparedRow {
                row: number,
                idempotency_key: Some(key),
                run: Ok((body, fingerprint)),
            }
        }
        Err((key, error)) => PreparedRow {
            row: number,
            idempotency_key: key,
            run: Err(Box::new(error)),
        },
    }
}

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
async fn take(
    state: &AppState,
    account: Account,
    mut tx: Tx,
    prepared: &Prepared,
) -> Result<Response, ApiError> {
    let row_count = i32::try_from(prepared.rows.len()).unwrap_or(i32::MAX);
    let batch = {
        let mut start = state.metrics.waiting_for(state.pool.begin()).await?;
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
        let keyed: Vec<KeyedRow> = runnable
            .iter()
            .filter_map(|row| {
                let (_, fingerprint) = row.run.as_ref().ok()?;
                Some(KeyedRow {
                    key: row.idempotency_key.clone()?,
                    fingerprint: *fingerprint,
                })
            })
            .collect();
        let endpoint = CreateOrders {
            account,
            rows: &runnable,
        };
        let (mut chunk_tx, outcomes) = run_chunk(state, account.id, &keyed, endpoint).await?;
        let mut outcomes = outcomes.into_iter();
        let mut results = Vec::with_capacity(chunk.len());
        for row in chunk {
            let result = match &row.run {
                Ok(_) => {
                    let outcome = outcomes
                        .next()
                        .ok_or_else(|| ApiError::internal("a row of the chunk has no outcome"))?;
                    row_result(row, outcome)
                }
                Err(error) => failed_row(row, error)?,
            };
            results.push(result);
        }
        db::order_batches::insert_rows(&mut chunk_tx, account.id, batch.id, &results).await?;
        chunk_tx.commit().await?;
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

/// `POST /v1/orders` for rows of a batch.
struct CreateOrders<'a> {
    account: Account,
    rows: &'a [&'a PreparedRow],
}

impl RowEndpoint for CreateOrders<'_> {
    async fn answer(
        &mut self,
        conn: &mut PgConnection,
        rows: &[usize],
    ) -> Result<Vec<Response>, ApiError> {
        let bodies = rows
            .iter()
            .filter_map(|&i| {
                self.rows
                    .get(i)?
                    .run
                    .as_ref()
                    .ok()
                    .map(|(body, _)| body.clone())
            })
            .collect();
        create_orders(conn, self.account, bodies).await
    }
}

/// What `POST /v1/orders` answers for each of `bodies`, in order, writing the orders in one statement: the same
/// checks in the same order (the body's rules, then the template and its merge variables).
async fn create_orders(
    conn: &mut PgConnection,
    account: Account,
    bodies: Vec<Value>,
) -> Result<Vec<Response>, ApiError> {
    let mut answers: Vec<Option<Response>> = Vec::with_capacity(bodies.len());
    let mut valid = Vec::new();
    for (index, body) in bodies.into_iter().enumerate() {
        match deserialize::<CreateOrder>(&body).and_then(Validate::validate) {
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
    let mut new_orders = Vec::new();
    for (index, order) in &valid {
        match templates.get(&order.template_id) {
            None => {
                answers[*index] = Some(
                    ApiError::TemplateNotFound {
                        id: order.template_id,
                    }
                    .into_response(),
                );
            }
            Some(template) => {
                let missing =
                    missing_merge_variables(&template.merge_fields, &order.merge_variables);
                if missing.is_empty() {
                    new_orders.push((
                        *index,
                        NewOrderRow {
                            id: Uuid::now_v7(),
                            template_version: template.version,
                            order,
                        },
                    ));
                } else {
                    answers[*index] =
                        Some(ApiError::MissingMergeVariables { missing }.into_response());
                }
            }
        }
    }
    let (indices, rows): (Vec<usize>, Vec<NewOrderRow<'_>>) = new_orders.into_iter().unzip();
    let orders = db::orders::insert_many(conn, account.id, &rows).await?;
    if orders.len() != rows.len() {
        return Err(ApiError::internal(
            "not every order of the chunk was inserted",
        ));
    }
    for (index, order) in indices.into_iter().zip(orders) {
        answers[index] = Some(Created::at(order.location(), order).into_response());
    }
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
        idempotency_key: row.idempotency_key.clone(),
        status,
        order_id: None,
        replayed: false,
        error: Some(serde_json::to_value(error.to_problem()).map_err(ApiError::internal)?),
    })
}

/// Checks every row as [`take`] would run it, and answers the report; reads, and writes nothing.
async fn validate_only(
    state: &AppState,
    account: Account,
    rows: &[PreparedRow],
) -> Result<Response, ApiError> {
    let mut conn = state.metrics.waiting_for(state.pool.begin()).await?;
    let keys: Vec<String> = rows
        .iter()
        .filter(|row| row.run.is_ok())
        .filter_map(|row| row.idempotency_key.clone())
        .collect();
    let stored: HashMap<String, db::idempotency_keys::StoredKey> =
        db::idempotency_keys::find_many(&mut *conn, account.id, &keys)
            .await?
            .into_iter()
            .filter(|(_, key)| !key.expired)
            .collect();
    // The first row with a key not stored yet is the one that would run.
    let mut seen = HashSet::new();
    let (to_check, bodies): (Vec<usize>, Vec<Value>) = rows
        .iter()
        .enumerate()
        .filter_map(|(index, row)| {
            let (body, _) = row.run.as_ref().ok()?;
            let key = row.idempotency_key.as_deref()?;
            (!stored.contains_key(key) && seen.insert(key)).then(|| (index, body.clone()))
        })
        .unzip();
    let mut checked: HashMap<usize, Result<(), ApiError>> = to_check
        .into_iter()
        .zip(check_orders(&mut conn, account, bodies).await?)
        .collect();
    conn.rollback().await?;

    // Later rows with that key get its outcome, or 422 for other content.
    let mut first: HashMap<&str, (Fingerprint, RowResult)> = HashMap::new();
    let mut results = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let (_, fingerprint) = match &row.run {
            Ok(run) => run,
            Err(error) => {
                results.push(failed_row(row, error)?);
                continue;
            }
        };
        let key = row.idempotency_key.as_deref().unwrap_or_default();
        let result = if let Some(stored) = stored.get(key) {
            if stored.fingerprint == fingerprint.0 {
                row_result(
                    row,
                    RowOutcome {
                        response: stored.response.clone(),
                        replayed: true,
                    },
                )
            } else {
                failed_row(row, &ApiError::IdempotencyKeyReused)?
            }
        } else if let Some((first_fingerprint, first_result)) = first.get(key) {
            if first_fingerprint == fingerprint {
                RowResult {
                    row: row.row,
                    replayed: true,
                    ..first_result.clone()
                }
            } else {
                failed_row(row, &ApiError::IdempotencyKeyReused)?
            }
        } else {
            let result = match checked.remove(&index) {
                Some(Ok(())) => RowResult {
                    row: row.row,
                    idempotency_key: row.idempotency_key.clone(),
                    status: StatusCode::CREATED.as_u16(),
                    order_id: None,
                    replayed: false,
                    error: None,
                },
                Some(Err(error)) => failed_row(row, &error)?,
                None => return Err(ApiError::internal("a row was not checked")),
            };
            first.insert(key, (*fingerprint, result.clone()));
            result
        };
        results.push(result);
    }
    Ok(Json(OrderBatchValidation {
        counts: BatchCounts::of(&results),
        results,
    })
    .into_response())
}

/// The checks of [`create_orders`] without the writes.
async fn check_orders(
    conn: &mut PgConnection,
    account: Account,
    bodies: Vec<Value>,
) -> Result<Vec<Result<(), ApiError>>, ApiError> {
    let checked: Vec<Result<NewOrder, ApiError>> = bodies
        .into_iter()
        .map(|body| deserialize::<CreateOrder>(&body).and_then(Validate::validate))
        .collect();
    let template_ids: Vec<Uuid> = checked
        .iter()
        .filter_map(|order| Some(order.as_ref().ok()?.template_id))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let templates = latest_versions(conn, account, &template_ids).await?;
    Ok(checked
        .into_iter()
        .map(|order| {
            let order = order?;
            let template = templates
                .get(&order.template_id)
                .ok_or(ApiError::TemplateNotFound {
                    id: order.template_id,
                })?;
            let missing = missing_merge_variables(&template.merge_fields, &order.merge_variables);
            if missing.is_empty() {
                Ok(())
            } else {
                Err(ApiError::MissingMergeVariables { missing })
            }
        })
        .collect())
}

fn location(id: Uuid) -> String {
    format!("/v1/order_batches/{id}")
}

/// List order batches
///
/// Newest first, a page at a time: pass the last `id` of a page as `starting_after` to get the next.
#[utoipa::path(
    get,
    path = "/v1/order_batches",
    operation_id = "listOrderBatches",
    tag = "order_batches",
    params(ListQuery<OrderBatch>),
    responses(
        (status = 200, description = "A page of batches, without their rows.", body = OrderBatchList),
        (status = 401, response = problems::Unauthorized),
        (status = 422, response = problems::UnprocessableEntity),
        (status = 500, response = problems::InternalError),
        (status = 503, response = problems::ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(pool): State<PgPool>,
    account: Account,
    ValidQuery(page): ValidQuery<ListQuery<OrderBatch>>,
) -> Result<List<OrderBatch>, ApiError> {
    Ok(db::order_batches::list(&pool, account.id, &page)
        .await?
        .into())
}

/// Retrieve an order batch
///
/// With the first page of its row results.
#[utoipa::path(
    get,
    path = "/v1/order_batches/{id}",
    operation_id = "getOrderBatch",
    tag = "order_batches",
    params(("id" = Uuid, Path, description = "The batch's id.")),
    responses(
        (status = 200, description = "The batch.", body = OrderBatchWithResults),
        (status = 401, response = problems::Unauthorized),
        (status = 404, response = problems::NotFound),
        (status = 500, response = problems::InternalError),
        (status = 503, response = problems::ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn get(
    State(pool): State<PgPool>,
    account: Account,
    PathId(id, ..): PathId<OrderBatch>,
) -> Result<Json<OrderBatchWithResults>, ApiError> {
    let batch = db::order_batches::find(&pool, account.id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let first_page = PageRequest {
        limit: i64::try_from(FIRST_PAGE).unwrap_or(i64::MAX),
        ..PageRequest::default()
    };
    let results = db::order_batches::rows(&pool, account.id, id, &first_page).await?;
    Ok(Json(OrderBatchWithResults {
        batch,
        results: results.into(),
    }))
}

impl Listed for RowResult {
    type Key = i32;
    const KEY: &'static str = "row";
    const ONE: &'static str = "row result";
    const PLURAL: &'static str = "row results";
    const ORDER: ListOrder = ListOrder::FileOrder;

    fn key_schema() -> Object {
        list::number_schema(0)
    }

    fn parse_key(key: &str) -> Result<i32, String> {
        key.parse::<i32>()
            .ok()
            .filter(|row| *row >= 0)
            .ok_or_else(|| "must be a row number".to_owned())
    }
}

/// Which row results to return.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RowFilterQuery {
    /// Only rows with this status (e.g. 201, 422).
    #[param(value_type = Option<i32>, minimum = 100, maximum = 599)]
    status: Option<String>,
}

impl Filter for RowFilterQuery {
    type Valid = Option<u16>;
    const PARAMETERS: &'static [&'static str] = &["status"];

    fn take(&mut self, name: &str, value: String) -> bool {
        let known = name == "status";
        if known {
            self.status = Some(value);
        }
        known
    }

    fn validate_in(self, v: &mut Validator) -> Option<Option<u16>> {
        v.check(
            "status",
            self.status
                .map(|status| {
                    status
                        .parse::<u16>()
                        .ok()
                        .filter(|status| (100..=599).contains(status))
                        .ok_or_else(|| "must be an HTTP status code, 100 to 599".to_owned())
                })
                .transpose(),
        )
    }
}

/// List the row results of an order batch
///
/// In file order, a page at a time: pass the last `row` of a page as `starting_after` to get the next.
#[utoipa::path(
    get,
    path = "/v1/order_batches/{id}/rows",
    operation_id = "listOrderBatchRows",
    tag = "order_batches",
    params(("id" = Uuid, Path, description = "The batch's id."), ListQuery<RowResult, RowFilterQuery>),
    responses(
        (status = 200, description = "A page of row results.", body = RowResultList),
        (status = 401, response = problems::Unauthorized),
        (status = 404, response = problems::NotFound),
        (status = 422, response = problems::UnprocessableEntity),
        (status = 500, response = problems::InternalError),
        (status = 503, response = problems::ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn rows(
    State(pool): State<PgPool>,
    account: Account,
    PathId(id, ..): PathId<OrderBatch>,
    ValidQuery(page): ValidQuery<ListQuery<RowResult, RowFilterQuery>>,
) -> Result<List<RowResult>, ApiError> {
    if db::order_batches::find(&pool, account.id, id)
        .await?
        .is_none()
    {
        return Err(not_found(id));
    }
    Ok(db::order_batches::rows(&pool, account.id, id, &page)
        .await?
        .into())
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound {
        resource: OrderBatch::NAME,
        id: id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(row: i32, key: &str, runs: bool) -> PreparedRow {
        PreparedRow {
            row,
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
