//! `/v1/order_batches`: a file of orders (CSV or JSON), every row taken exactly once, and what became of each row.

mod prepare;
mod rows;
mod take;
mod validate;

use axum::{
    Json,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema, openapi::Object};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use self::prepare::{BatchBody, prepare};
use super::{
    list::{self, Filter, List, ListOrder, ListQuery, Listed, OrderBatchList, RowResultList},
    problems,
};
use crate::{
    db::{self, PageRequest},
    domain::{
        batch::{BatchCounts, OrderBatch, RowResult},
        input::validation::Validator,
    },
    http::auth::Account,
    http::error::{ApiError, Rejection},
    http::extract::{PathId, Resource, ValidQuery},
    idempotency::tx::Tx,
    state::AppState,
};

/// Row results in the answer to `POST` and `GET` of a batch; the rest are at `/v1/order_batches/{id}/rows`.
const FIRST_PAGE: usize = 20;

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
        validate::validate_only(&state, account, &prepared.rows).await
    } else {
        take::take(&state, account, tx, &prepared).await
    };
    answer.unwrap_or_else(IntoResponse::into_response)
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
