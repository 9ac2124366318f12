//! A batch request read and checked as a whole: its settings, its file, and every row's key and fingerprint.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{HeaderMap, Method},
};
use serde_json::Value;

use super::{CreateOrderBatch, CreateOrderBatchQuery};
use crate::{
    domain::{
        batch::{BatchRow, KeyFrom, json_rows, parse_csv},
        input::id::parse_id,
        input::validation::Validator,
    },
    http::body::{JsonBody, is_csv, read_body, sends_json},
    http::error::{ApiError, Rejection},
    http::extract::{Validate, deserialize},
    idempotency::{
        fingerprint::{self, Fingerprint},
        key::IdempotencyKey,
    },
    state::AppState,
};

/// The path a batch row stands for.
const ORDERS_PATH: &str = "/v1/orders";

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

/// A batch, read and checked as a whole, with every row ready to run or failed already.
pub struct Prepared {
    pub rows: Vec<PreparedRow>,
    pub batch_key: Option<String>,
    pub validate_only: bool,
}

pub struct PreparedRow {
    pub row: i32,
    pub line: Option<i32>,
    pub idempotency_key: Option<String>,
    /// The row's body and fingerprint, or the answer of a row that cannot run (no usable key, no order body).
    pub run: Result<(Value, Fingerprint), Box<ApiError>>,
}

pub fn prepare(
    state: &AppState,
    headers: &HeaderMap,
    settings: BatchSettings,
    body: BatchBody,
) -> Result<Prepared, ApiError> {
    let max_rows = state.config.batches.max_rows;
    let (rows, key_from) = match body {
        BatchBody::Csv(bytes) => {
            let rows = parse_csv(&bytes, settings.template_id.as_deref(), max_rows)?;
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
            let rows = json_rows(batch.orders, template_id.as_deref(), max_rows)?;
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
    let line = row.line;
    let body = match row.body {
        Ok(body) => body,
        Err(errors) => {
            return PreparedRow {
                row: number,
                line,
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
            let fingerprint = fingerprint::of_json(&Method::POST, ORDERS_PATH, &body);
            PreparedRow {
                row: number,
                line,
                idempotency_key: Some(key),
                run: Ok((body, fingerprint)),
            }
        }
        Err((key, error)) => PreparedRow {
            row: number,
            line,
            idempotency_key: key,
            run: Err(Box::new(error)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_stands_for_the_route_of_create_order() {
        let (_, api) = crate::api::orders::router().split_for_parts();
        let post = api
            .paths
            .paths
            .get(ORDERS_PATH)
            .and_then(|path| path.post.as_ref());
        assert_eq!(
            post.and_then(|post| post.operation_id.as_deref()),
            Some("createOrder")
        );
    }
}
