//! The database's own row rules (the CHECK constraints of migrations/), which hold whatever writes the row: every
//! verdict of the three rule functions over values at and past each limit, and the constraints that use them.

use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgPool};

use crate::helpers::{Object, TestApp};

/// What the three rules say of a document (`None` for SQL NULL): is_address, is_string_map, is_metadata.
type Verdicts = (Option<bool>, Option<bool>, Option<bool>);

/// Each document, `None` for SQL NULL, with its verdicts.
fn verdicts() -> Vec<(Option<Value>, Verdicts)> {
    let address = json!({"name": "A", "street": "S", "house_number": "1", "postal_code": "P", "city": "C",
                         "country": "NL"});
    let with = |member: &str, value: Value| {
        let mut changed = address.clone();
        changed[member] = value;
        changed
    };
    let keys = |n: usize| Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect());
    let one = |key: String, value: Value| json!({ key: value });
    let (t, f) = (Some(true), Some(false));
    vec![
        (None, (None, None, None)),
        (Some(json!(null)), (f, f, f)),
        (Some(json!("s")), (f, f, f)),
        (Some(json!(["a"])), (f, f, f)),
        (Some(json!({})), (f, t, t)),
        (Some(json!({"a": "b", "c": "d"})), (f, t, t)),
        (Some(json!({"a": 1})), (f, f, f)),
        (Some(json!({"a": null})), (f, f, f)),
        // An array of strings is not a string: no unwrapping of arrays.
        (Some(json!({"a": ["x"]})), (f, f, f)),
        (Some(json!({"a": {"b": "c"}})), (f, f, f)),
        (Some(one(String::new(), json!("x"))), (f, t, f)),
        (Some(json!({"a[": "x"})), (f, t, f)),
        (Some(json!({"a]": "x"})), (f, t, f)),
        (Some(json!({"a\nb": "x\ny"})), (f, t, t)),
        (Some(one("k".repeat(40), json!("v"))), (f, t, t)),
        (Some(one("k".repeat(41), json!("v"))), (f, t, f)),
        (Some(one("é".repeat(40), json!("v"))), (f, t, t)),
        (Some(one("é".repeat(41), json!("v"))), (f, t, f)),
        (Some(one("\n".repeat(41), json!("v"))), (f, t, f)),
        (Some(json!({"k": "v".repeat(500)})), (f, t, t)),
        (Some(json!({"k": "v".repeat(501)})), (f, t, f)),
        (Some(json!({"k": "é".repeat(500)})), (f, t, t)),
        (Some(json!({"k": "é".repeat(501)})), (f, t, f)),
        (Some(json!({"k": "\n".repeat(501)})), (f, t, f)),
        (Some(keys(20)), (f, t, t)),
        (Some(keys(21)), (f, t, f)),
        (Some(address.clone()), (t, t, t)),
        (Some(with("company", json!(null))), (t, f, f)),
        (Some(with("company", json!("Co"))), (t, t, t)),
        (Some(with("company", json!(""))), (f, t, t)),
        (Some(with("company", json!(1))), (f, f, f)),
        (Some(with("country", json!("nl"))), (f, t, t)),
        (Some(with("country", json!("NLD"))), (f, t, t)),
        (Some(with("country", json!("NL\n"))), (f, t, t)),
        (Some(with("country", json!(null))), (f, f, f)),
        (Some(with("extra", json!("x"))), (f, t, t)),
        (Some(with("name", json!(""))), (f, t, t)),
        (Some(with("name", json!("n".repeat(200)))), (t, t, t)),
        (Some(with("name", json!("n".repeat(201)))), (f, t, t)),
        (Some(with("name", json!(1))), (f, f, f)),
        (Some(with("house_number", json!("1".repeat(21)))), (f, t, t)),
        (Some(json!([address])), (f, f, f)),
    ]
}

#[sqlx::test]
async fn each_rule_gives_its_verdict_at_and_past_every_limit(pool: PgPool) {
    for (document, expected) in verdicts() {
        let found: Verdicts = sqlx::query_as(
            "SELECT order_intake_is_address($1), order_intake_is_string_map($1), order_intake_is_metadata($1)",
        )
        .bind(&document)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            found, expected,
            "{document:?}: (address, string map, metadata)"
        );
    }
}

#[sqlx::test]
async fn the_rules_are_compiled_once_per_session(pool: PgPool) {
    // PostgreSQL prepares each CHECK expression for every statement; a SQL function in it is parsed and planned
    // again each time, a PL/pgSQL one is compiled once per session (migrations/20261129700000_row_checks_plpgsql.sql).
    let languages: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.proname::text, l.lanname::text FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang \
         WHERE p.proname IN ('order_intake_is_address', 'order_intake_is_string_map', 'order_intake_is_metadata') \
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let plpgsql = |name: &str| (name.to_owned(), "plpgsql".to_owned());
    assert_eq!(
        languages,
        [
            plpgsql("order_intake_is_address"),
            plpgsql("order_intake_is_metadata"),
            plpgsql("order_intake_is_string_map"),
        ]
    );
}

#[sqlx::test]
async fn a_row_written_past_the_api_is_held_to_the_rules(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    let id: uuid::Uuid = order.uuid();
    for (column, value, constraint) in [
        (
            "recipient",
            json!({"name": "A"}),
            "orders_recipient_is_address",
        ),
        (
            "sender",
            json!({"name": "A", "extra": 1}),
            "orders_sender_is_address",
        ),
        (
            "merge_variables",
            json!({"a": ["x"]}),
            "orders_merge_variables_is_string_map",
        ),
        (
            "metadata",
            json!({"k": "v".repeat(501)}),
            "orders_metadata_is_metadata",
        ),
    ] {
        // The column is one of the four names above.
        let error = sqlx::query(AssertSqlSafe(format!(
            "UPDATE orders SET {column} = $3 WHERE account_id = $1 AND id = $2"
        )))
        .bind(app.account_id)
        .bind(id)
        .bind(&value)
        .execute(&app.pool)
        .await
        .expect_err(column);
        // On Citus the name comes from the worker's message, which this function reads too.
        assert_eq!(
            order_intake::db::violated_constraint(&error),
            Some(constraint),
            "{column}: {error}"
        );
    }
    // A NULL sender passes, as before.
    sqlx::query("UPDATE orders SET sender = NULL WHERE account_id = $1 AND id = $2")
        .bind(app.account_id)
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
}
