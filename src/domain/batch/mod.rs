//! Order batches: the rows of a CSV or JSON file as `POST /v1/orders` bodies, and the keys derived from their data.
//!
//! A batch row is exactly a `POST /v1/orders` with the row's `Idempotency-Key` and the row as its body, so a row is
//! turned into that body (a JSON object) here, and the order rules then apply to it as to any other.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

mod key_from;

pub use self::key_from::KeyFrom;
use super::{
    address::Address,
    csv::{self, Malformed},
    input::validation::FieldError,
    merge::is_field_name,
};

/// The member of a row that holds its own `Idempotency-Key` (a CSV column or a member of a JSON row).
pub const IDEMPOTENCY_KEY: &str = "idempotency_key";

/// Most fields a key is derived from.
const MAX_KEY_FROM: usize = 10;

/// An order batch, as the API returns it (without its rows).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderBatch {
    pub id: Uuid,
    #[serde(with = "super::timestamp")]
    pub created_at: OffsetDateTime,
    /// When the last row was taken; `null` while rows are being taken, or when the server stopped in the middle
    /// (send the batch again with the same `Idempotency-Key` to complete it).
    #[serde(with = "super::timestamp::option")]
    #[schema(required = true)]
    pub completed_at: Option<OffsetDateTime>,
    pub counts: BatchCounts,
}

/// How the rows of a batch went; `created + replayed + failed = rows` once the batch is complete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct BatchCounts {
    pub rows: i32,
    /// Rows that became a new order.
    pub created: i32,
    /// Rows whose key already had an outcome, which they got again (an order, or a stored failure).
    pub replayed: i32,
    /// Rows that failed and were not replays.
    pub failed: i32,
}

/// What became of one row: what a single `POST /v1/orders` with the row's key and body would have answered.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"row": 1, "line": 2, "idempotency_key": "metadata.customer_id:4711", "status": 201,
                          "order_id": "019ac9f1-1a2b-7c3d-8e4f-5a6b7c8d9e0f", "replayed": false}))]
pub struct RowResult {
    /// 1-based, as in the file; a CSV header is not counted.
    pub row: i32,
    /// The physical line (1-based) a CSV record starts on, as a text editor counts them; `null` in a JSON batch.
    #[schema(required = true)]
    pub line: Option<i32>,
    /// The row's key, given or derived; `null` when it had none.
    #[schema(required = true)]
    pub idempotency_key: Option<String>,
    /// The HTTP status a single `POST /v1/orders` would have had: 201 for an order.
    pub status: u16,
    /// The order, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<Uuid>,
    /// The key already had an outcome, and this is it.
    pub replayed: bool,
    /// The problem document (RFC 9457) of a failed row.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

impl RowResult {
    /// Whether the row became a new order.
    pub fn created(&self) -> bool {
        !self.replayed && (200..300).contains(&self.status)
    }

    /// Whether the row failed without being a replay.
    pub fn failed(&self) -> bool {
        !self.replayed && self.status >= 400
    }
}

impl BatchCounts {
    /// The counts of `results`.
    pub fn of(results: &[RowResult]) -> Self {
        let count = |f: fn(&RowResult) -> bool| {
            i32::try_from(results.iter().filter(|r| f(r)).count()).unwrap_or(i32::MAX)
        };
        Self {
            rows: i32::try_from(results.len()).unwrap_or(i32::MAX),
            created: count(RowResult::created),
            replayed: count(|r| r.replayed),
            failed: count(RowResult::failed),
        }
    }
}

/// One row of a batch, before the order rules are applied.
#[derive(Debug, Clone)]
pub struct BatchRow {
    /// 1-based, as in the file; a CSV header is not counted.
    pub row: i32,
    /// The physical line (1-based) a CSV record starts on; `None` in a JSON batch.
    pub line: Option<i32>,
    /// The row's own key, as given.
    pub idempotency_key: Option<String>,
    /// The row as a `POST /v1/orders` body, or why it cannot be one.
    pub body: Result<Value, Vec<FieldError>>,
}

/// Why a whole batch is refused before any row is taken (a 422 at the HTTP edge).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Settings, columns or limits the file breaks.
    #[error("The batch has {} invalid field(s).", .0.len())]
    Fields(Vec<FieldError>),
    /// A file whose records cannot be told apart with certainty.
    #[error("{}", .0.reason)]
    Malformed(Malformed),
}

impl BatchError {
    fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Fields(vec![FieldError::new(field, message)])
    }
}

/// What a CSV column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    IdempotencyKey,
    /// A member of the order body, by its path: `["recipient", "city"]`, `["send_date"]`.
    Member(Vec<String>),
}

/// A column name (or a `key_from` field) as a path into the order body; `None` for an unknown name.
///
/// The names: `template_id`, `recipient.<member>` and `sender.<member>` (a member of [`Address`]), `send_date`,
/// `merge_variables.<field>` and `metadata.<key>` (a [field name](is_field_name)).
fn member_path(name: &str) -> Option<Vec<String>> {
    let path = match name.split_once('.') {
        None if matches!(name, "template_id" | "send_date") => vec![name.to_owned()],
        Some((address @ ("recipient" | "sender"), member))
            if Address::members().contains(&member) =>
        {
            vec![address.to_owned(), member.to_owned()]
        }
        Some((map @ ("merge_variables" | "metadata"), member)) if is_field_name(member) => {
            vec![map.to_owned(), member.to_owned()]
        }
        _ => return None,
    };
    Some(path)
}

/// The rows of a CSV file (RFC 4180: a header row, quoted fields, CRLF or LF line ends, an optional UTF-8 BOM).
///
/// The file's structure is read whole first ([`csv::records`]): a quote that leaves the end of a record uncertain
/// refuses the file. Each record then becomes an order body: a column per member (named as [`KeyFrom::parse`] takes
/// them), an empty cell is a member left out, and a row without `template_id` gets `template_id`, the batch's.
/// Unknown or repeated columns and more than `max_rows` records refuse the whole file; a record that cannot be an
/// order (another number of fields on one line, bytes that are not UTF-8) fails alone.
pub fn parse_csv(
    bytes: &[u8],
    template_id: Option<&str>,
    max_rows: usize,
) -> Result<Vec<BatchRow>, BatchError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut records = csv::records(bytes, b',')
        .map_err(BatchError::Malformed)?
        .into_iter();
    let Some(header) = records.next() else {
        return Err(BatchError::field("", "the file is empty"));
    };
    let columns = columns(&header.fields)?;
    if records.len() > max_rows {
        return Err(too_many_rows(max_rows));
    }
    let mut rows = Vec::with_capacity(records.len());
    for (index, record) in records.enumerate() {
        let row = i32::try_from(index + 1).unwrap_or(i32::MAX);
        let line = i32::try_from(record.line).unwrap_or(i32::MAX);
        if record.fields.len() == columns.len() {
            rows.push(csv_row(row, line, &columns, &record.fields, template_id));
            continue;
        }
        let counts = format!(
            "it has {} fields where the header has {}",
            record.fields.len(),
            columns.len()
        );
        if record.multi_line {
            // A quoted line end in a record of the wrong length: most likely a quote that took in other records.
            return Err(BatchError::Malformed(Malformed {
                record: u32::try_from(row).unwrap_or(u32::MAX),
                line: record.line,
                reason: format!(
                    "row {row}, from line {line}, spans several lines and {counts}: a quote in it may hold lines \
                     of other rows"
                ),
            }));
        }
        rows.push(BatchRow {
            row,
            line: Some(line),
            idempotency_key: None,
            body: Err(vec![FieldError::new(
                "",
                format!("the row cannot be read: {counts}"),
            )]),
        });
    }
    if rows.is_empty() {
        return Err(BatchError::field(
            "",
            "the file has no rows after its header",
        ));
    }
    Ok(rows)
}

fn too_many_rows(max_rows: usize) -> BatchError {
    BatchError::field(
        "orders",
        format!("a batch has at most {max_rows} rows; split the file"),
    )
}

/// The header's columns: 422 naming every unknown or repeated one, so that a typo is never dropped silently.
fn columns(header: &[Vec<u8>]) -> Result<Vec<Column>, BatchError> {
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let mut columns = Vec::with_capacity(header.len());
    for name in header {
        let name = String::from_utf8_lossy(name).trim().to_owned();
        let column = if name == IDEMPOTENCY_KEY {
            Some(Column::IdempotencyKey)
        } else {
            member_path(&name).map(Column::Member)
        };
        if !seen.insert(name.clone()) {
            errors.push(FieldError::new(name.clone(), "is a column twice"));
        }
        match column {
            Some(column) => columns.push(column),
            None => errors.push(FieldError::new(
                name.chars().take(100).collect::<String>(),
                "is not a known column: use idempotency_key, template_id, send_date, recipient.<member>, \
                 sender.<member>, merge_variables.<field> or metadata.<key>",
            )),
        }
    }
    if errors.is_empty() {
        Ok(columns)
    } else {
        Err(BatchError::Fields(errors))
    }
}

fn csv_row(
    row: i32,
    line: i32,
    columns: &[Column],
    record: &[Vec<u8>],
    template_id: Option<&str>,
) -> BatchRow {
    let mut idempotency_key = None;
    let mut body = Map::new();
    let mut errors = Vec::new();
    for (column, cell) in columns.iter().zip(record) {
        if cell.is_empty() {
            continue;
        }
        let Ok(text) = std::str::from_utf8(cell) else {
            errors.push(FieldError::new(column_name(column), "is not UTF-8"));
            continue;
        };
        match column {
            Column::IdempotencyKey => idempotency_key = Some(text.to_owned()),
            Column::Member(path) => insert_at(&mut body, path, text),
        }
    }
    if let Some(template_id) = template_id {
        body.entry("template_id")
            .or_insert_with(|| Value::String(template_id.to_owned()));
    }
    BatchRow {
        row,
        line: Some(line),
        idempotency_key,
        body: if errors.is_empty() {
            Ok(Value::Object(body))
        } else {
            Err(errors)
        },
    }
}

fn column_name(column: &Column) -> String {
    match column {
        Column::IdempotencyKey => IDEMPOTENCY_KEY.to_owned(),
        Column::Member(path) => path.join("."),
    }
}

fn insert_at(body: &mut Map<String, Value>, path: &[String], text: &str) {
    match path {
        [member] => {
            body.insert(member.clone(), Value::String(text.to_owned()));
        }
        [object, member] => {
            if let Value::Object(inner) = body
                .entry(object.clone())
                .or_insert_with(|| Value::Object(Map::new()))
            {
                inner.insert(member.clone(), Value::String(text.to_owned()));
            }
        }
        _ => {}
    }
}

/// The rows of a JSON batch: each element of `orders` is an order body with an optional `idempotency_key`
/// member, which is taken out; a row without `template_id` gets the batch's.
pub fn json_rows(
    orders: Vec<Value>,
    template_id: Option<&str>,
    max_rows: usize,
) -> Result<Vec<BatchRow>, BatchError> {
    if orders.len() > max_rows {
        return Err(too_many_rows(max_rows));
    }
    if orders.is_empty() {
        return Err(BatchError::field("orders", "must hold at least one order"));
    }
    Ok(orders
        .into_iter()
        .enumerate()
        .map(|(index, order)| {
            let row = i32::try_from(index + 1).unwrap_or(i32::MAX);
            let Value::Object(mut body) = order else {
                return BatchRow {
                    row,
                    line: None,
                    idempotency_key: None,
                    body: Err(vec![FieldError::new("", "must be a JSON object")]),
                };
            };
            let idempotency_key = match body.remove(IDEMPOTENCY_KEY) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(key)) => Ok(Some(key)),
                Some(_) => Err(vec![FieldError::new(IDEMPOTENCY_KEY, "must be a string")]),
            };
            if let Some(template_id) = template_id {
                body.entry("template_id")
                    .or_insert_with(|| Value::String(template_id.to_owned()));
            }
            match idempotency_key {
                Ok(idempotency_key) => BatchRow {
                    row,
                    line: None,
                    idempotency_key,
                    body: Ok(Value::Object(body)),
                },
                Err(errors) => BatchRow {
                    row,
                    line: None,
                    idempotency_key: None,
                    body: Err(errors),
                },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key_from(fields: &[&str]) -> KeyFrom {
        KeyFrom::parse(fields.iter().map(|f| (*f).to_owned()).collect()).unwrap()
    }

    #[test]
    fn derived_keys_are_normalised_and_name_their_fields() {
        let from = key_from(&["recipient.postal_code", "recipient.house_number"]);
        let a = json!({"recipient": {"postal_code": " 1015  CJ ", "house_number": "123A"}});
        let b = json!({"recipient": {"postal_code": "1015 cj", "house_number": "123A"}});
        assert_eq!(
            from.derive(&a).unwrap(),
            "recipient.postal_code,recipient.house_number:1015%20cj|123A"
        );
        assert_eq!(from.derive(&a).unwrap(), from.derive(&b).unwrap());
        let c = json!({"recipient": {"postal_code": "1015 CJ", "house_number": "123a"}});
        assert_ne!(from.derive(&a).unwrap(), from.derive(&c).unwrap());
    }

    #[test]
    fn the_separator_cannot_come_from_a_value_and_other_fields_give_other_keys() {
        let from = key_from(&["merge_variables.a", "merge_variables.b"]);
        let one = from
            .derive(&json!({"merge_variables": {"a": "x|y", "b": "z"}}))
            .unwrap();
        let two = from
            .derive(&json!({"merge_variables": {"a": "x", "b": "y|z"}}))
            .unwrap();
        assert_ne!(one, two);
        let customer = key_from(&["metadata.customer_id"])
            .derive(&json!({"metadata": {"customer_id": "4711"}}))
            .unwrap();
        let other = key_from(&["metadata.crm_id"])
            .derive(&json!({"metadata": {"crm_id": "4711"}}))
            .unwrap();
        assert_eq!(customer, "metadata.customer_id:4711");
        assert_ne!(customer, other);
    }

    #[test]
    fn long_or_non_ascii_values_still_give_a_valid_key() {
        let from = key_from(&["recipient.name"]);
        let key = from
            .derive(&json!({"recipient": {"name": "Zoë Ðurić"}}))
            .unwrap();
        assert!(key.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{key}");
        let long = from
            .derive(&json!({"recipient": {"name": "é".repeat(100)}}))
            .unwrap();
        assert!(long.starts_with("sha256:") && long.len() == 71, "{long}");
    }

    #[test]
    fn a_missing_or_blank_value_names_its_field() {
        let from = key_from(&["metadata.customer_id"]);
        let error = from
            .derive(&json!({"metadata": {"customer_id": "  "}}))
            .unwrap_err();
        assert_eq!(error.field, "metadata.customer_id");
        assert!(from.derive(&json!({})).is_err());
    }

    #[test]
    fn key_from_names_known_distinct_fields() {
        assert!(KeyFrom::parse_list("recipient.postal_code,recipient.house_number").is_ok());
        assert!(KeyFrom::parse_list("recipient.zip").is_err());
        assert!(KeyFrom::parse_list("idempotency_key").is_err());
        assert!(KeyFrom::parse_list("send_date,send_date").is_err());
        assert!(KeyFrom::parse(Vec::new()).is_err());
    }

    #[test]
    fn csv_rows_become_order_bodies() {
        let csv = "\u{feff}idempotency_key,recipient.name,recipient.city,merge_variables.first_name,send_date\r\n\
                   k1,Anna,\"Amster\"\"dam, NL\",Anna,\r\n\
                   ,Bob,Utrecht,,2026-12-24\n";
        let rows = parse_csv(csv.as_bytes(), Some("t"), 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].idempotency_key.as_deref(), Some("k1"));
        assert_eq!(
            rows[0].body.as_ref().unwrap(),
            &json!({"template_id": "t", "recipient": {"name": "Anna", "city": "Amster\"dam, NL"},
                    "merge_variables": {"first_name": "Anna"}})
        );
        assert_eq!(rows[1].idempotency_key, None);
        assert_eq!(
            rows[1].body.as_ref().unwrap(),
            &json!({"template_id": "t", "recipient": {"name": "Bob", "city": "Utrecht"}, "send_date": "2026-12-24"})
        );
    }

    #[test]
    fn unknown_columns_and_too_many_rows_refuse_the_file() {
        let error = parse_csv(b"recipient.nmae,colour\nA,b\n", None, 10).unwrap_err();
        let BatchError::Fields(errors) = error else {
            panic!("{error:?}")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["recipient.nmae", "colour"]);
        assert!(parse_csv(b"send_date\n2026-12-24\n2026-12-25\n", None, 1).is_err());
        assert!(parse_csv(b"send_date\n", None, 1).is_err());
    }

    #[test]
    fn a_short_record_fails_alone() {
        let rows = parse_csv(b"recipient.name,recipient.city\nA,B\nC\nD,E\n", None, 10).unwrap();
        assert!(rows[0].body.is_ok() && rows[1].body.is_err() && rows[2].body.is_ok());
        assert_eq!((rows[2].row, rows[2].line), (3, Some(4)));
    }

    #[test]
    fn a_quote_that_takes_in_other_rows_refuses_the_file() {
        let file = b"recipient.name,recipient.city\nA,\"B\nC,D\nE,\"F\nG,H\n";
        let Err(BatchError::Malformed(error)) = parse_csv(file, None, 10) else {
            panic!("taken")
        };
        assert_eq!((error.record, error.line), (1, 2));
        let Err(BatchError::Malformed(error)) = parse_csv(b"recipient.name\n\"A\n", None, 10)
        else {
            panic!("taken")
        };
        assert_eq!((error.record, error.line), (1, 2));
        assert_eq!(
            parse_csv(b"", None, 10).unwrap_err(),
            BatchError::field("", "the file is empty")
        );
    }
}
