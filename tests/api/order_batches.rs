//! Order batches: every row is a keyed `POST /v1/orders`, taken exactly once, in CSV and JSON form.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use order_intake::{
    config::DatabaseConfig,
    db::{self, Sessions},
};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::helpers::{Object, TestApp, TestResponse, address, count, order_path, send};

const HEADER: &str = "idempotency_key,recipient.name,recipient.street,recipient.house_number,\
                      recipient.postal_code,recipient.city,recipient.country,merge_variables.first_name";

/// A CSV line for the columns of [`HEADER`].
fn line(key: &str, name: &str) -> String {
    format!("{key},{name},Keizersgracht,123A,1015 CJ,Amsterdam,NL,{name}\n")
}

fn csv(lines: &[String]) -> String {
    format!("{HEADER}\n{}", lines.concat())
}

async fn post_csv(app: &TestApp, query: &str, key: Option<&str>, body: String) -> TestResponse {
    let mut request = app
        .request(Method::POST, &format!("/v1/order_batches{query}"))
        .header(header::CONTENT_TYPE, "text/csv");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    send(request.body(body)).await
}

async fn post_json(app: &TestApp, query: &str, body: &Value) -> TestResponse {
    app.post(&format!("/v1/order_batches{query}"), body).await
}

/// A template with the merge field `first_name`, and the query that makes it the batch's.
async fn template(app: &TestApp) -> (Value, String) {
    let template = app.create_template("<p>Hi {{first_name}}</p>").await;
    let query = format!("?template_id={}", template.id());
    (template, query)
}

fn order(name: &str) -> Value {
    let mut recipient = address();
    recipient["name"] = json!(name);
    json!({"recipient": recipient, "merge_variables": {"first_name": name}})
}

/// Every row result of a batch, page by page.
async fn all_rows(app: &TestApp, batch: &Value, query: &str) -> Vec<Value> {
    let id = batch.id();
    let mut rows = Vec::new();
    let mut after = String::new();
    loop {
        let page = app
            .get(&format!(
                "/v1/order_batches/{id}/rows?limit=7{query}{after}"
            ))
            .await;
        page.assert_status(StatusCode::OK);
        let page = page.json();
        let data = page["data"].as_array().unwrap();
        rows.extend(data.iter().cloned());
        if !page["has_more"].as_bool().unwrap() {
            return rows;
        }
        after = format!("&starting_after={}", data.last().unwrap()["row"]);
    }
}

fn counts(batch: &Value) -> (i64, i64, i64, i64) {
    let c = &batch["counts"];
    (
        c["rows"].as_i64().unwrap(),
        c["created"].as_i64().unwrap(),
        c["replayed"].as_i64().unwrap(),
        c["failed"].as_i64().unwrap(),
    )
}

#[sqlx::test]
async fn a_csv_file_sent_twice_makes_each_order_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, query) = template(&app).await;
    // A BOM, CRLF line ends and a quoted field with a comma: RFC 4180 as spreadsheets write it.
    let file = format!(
        "\u{feff}{HEADER}\r\n{}{}a-3,\"Vries, Anna de\",Keizersgracht,123A,1015 CJ,Amsterdam,NL,Anna\r\n",
        line("a-1", "Anna").replace('\n', "\r\n"),
        line("a-2", "Bob").replace('\n', "\r\n"),
    );
    let first = post_csv(&app, &query, None, file.clone()).await;
    first.assert_status(StatusCode::CREATED);
    let batch = first.json();
    assert_eq!(
        first.header("location"),
        Some(format!("/v1/order_batches/{}", batch.id()).as_str())
    );
    assert_eq!(counts(&batch), (3, 3, 0, 0));
    assert!(batch["completed_at"].is_string());
    let results = batch["results"]["data"].as_array().unwrap().clone();
    assert_eq!(batch["results"]["has_more"], false);
    assert_eq!(
        results
            .iter()
            .map(|r| r["row"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for result in &results {
        assert_eq!(result["status"], 201);
        assert_eq!(result["replayed"], false);
        assert!(result.get("error").is_none());
    }
    let third = app
        .get(&format!(
            "/v1/orders/{}",
            results[2]["order_id"].as_str().unwrap()
        ))
        .await
        .json();
    assert_eq!(third["recipient"]["name"], "Vries, Anna de");
    assert_eq!(count(&app.pool, "orders").await, 3);

    let again = post_csv(&app, &query, None, file).await;
    again.assert_status(StatusCode::CREATED);
    let second = again.json();
    assert_ne!(
        second["id"], batch["id"],
        "a new batch request without a key"
    );
    assert_eq!(counts(&second), (3, 0, 3, 0));
    for (replayed, first) in second["results"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&results)
    {
        assert_eq!(replayed["replayed"], true);
        assert_eq!(replayed["status"], 201);
        assert_eq!(replayed["order_id"], first["order_id"]);
    }
    assert_eq!(count(&app.pool, "orders").await, 3);
}

#[sqlx::test]
async fn a_bad_row_fails_alone(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (template, _) = template(&app).await;
    let mut bad_country = order("Carol");
    bad_country["recipient"]["country"] = json!("XX");
    let mut no_merge_variables = order("Dan");
    no_merge_variables["merge_variables"] = json!({});
    let mut not_an_order = order("Eve");
    not_an_order["colour"] = json!("red");
    let unknown_template = json!("019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e");
    let mut rows = vec![
        json!({"idempotency_key": "ok-1"}),
        json!({"idempotency_key": "bad-country"}),
        json!({"idempotency_key": "no-merge"}),
        json!({"idempotency_key": "no-template", "template_id": unknown_template}),
        json!({"idempotency_key": "not-an-order"}),
        json!({}),
        json!("not an object"),
        json!({"idempotency_key": "ok-2"}),
    ];
    let bodies = [
        order("Anna"),
        bad_country,
        no_merge_variables,
        order("Finn"),
        not_an_order,
        order("Gus"),
        Value::Null,
        order("Bob"),
    ];
    for (row, body) in rows.iter_mut().zip(bodies) {
        if let (Value::Object(row), Value::Object(body)) = (row, body) {
            for (name, value) in body {
                row.entry(name).or_insert(value);
            }
        }
    }
    let response = post_json(
        &app,
        "",
        &json!({"template_id": template["id"], "orders": rows}),
    )
    .await;
    response.assert_status(StatusCode::CREATED);
    let batch = response.json();
    assert_eq!(counts(&batch), (8, 2, 0, 6));
    let results = batch["results"]["data"].as_array().unwrap();
    let statuses: Vec<_> = results
        .iter()
        .map(|r| {
            (
                r["status"].as_u64().unwrap(),
                r["error"]["type"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (201, ""),
            (422, "/problems/validation-failed"),
            (422, "/problems/missing-merge-variables"),
            (422, "/problems/template-not-found"),
            (422, "/problems/validation-failed"),
            (422, "/problems/validation-failed"),
            (422, "/problems/validation-failed"),
            (201, ""),
        ]
    );
    assert_eq!(
        results[1]["error"]["errors"][0]["field"],
        "recipient.country"
    );
    assert_eq!(results[5]["error"]["errors"][0]["field"], "idempotency_key");
    assert_eq!(count(&app.pool, "orders").await, 2);

    // As with a single POST: a stored outcome (no such template) replays, a rejected body does not hold its key.
    let mut no_template = order("Finn");
    no_template["template_id"] = unknown_template;
    let replay = app
        .keyed(Method::POST, "/v1/orders", "no-template", &no_template)
        .await;
    replay.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "template-not-found");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let mut fixed = order("Carol");
    fixed["template_id"] = template["id"].clone();
    app.keyed(Method::POST, "/v1/orders", "bad-country", &fixed)
        .await
        .assert_status(StatusCode::CREATED);
}

#[sqlx::test]
async fn a_key_repeated_in_the_file_replays_the_first_row_or_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, query) = template(&app).await;
    let file = csv(&[
        line("k", "Anna"),
        line("other", "Bob"),
        line("k", "Anna"),
        line("k", "Carol"),
    ]);
    let response = post_csv(&app, &query, None, file).await;
    response.assert_status(StatusCode::CREATED);
    let batch = response.json();
    assert_eq!(counts(&batch), (4, 2, 1, 1));
    let results = batch["results"]["data"].as_array().unwrap();
    assert_eq!(results[2]["replayed"], true);
    assert_eq!(results[2]["order_id"], results[0]["order_id"]);
    assert_eq!(results[3]["status"], 422);
    assert_eq!(
        results[3]["error"]["type"],
        "/problems/idempotency-key-reused"
    );
    assert_eq!(count(&app.pool, "orders").await, 2);
}

#[sqlx::test]
async fn batch_rows_and_single_posts_share_their_keys_byte_for_byte(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (template, query) = template(&app).await;
    let mut body = order("Anna");
    body["template_id"] = template["id"].clone();
    let single = app
        .keyed(Method::POST, "/v1/orders", "single-first", &body)
        .await;
    single.assert_status(StatusCode::CREATED);

    let response = post_csv(
        &app,
        &query,
        None,
        csv(&[line("single-first", "Anna"), line("batch-first", "Bob")]),
    )
    .await;
    response.assert_status(StatusCode::CREATED);
    let results = response.json()["results"]["data"].clone();
    assert_eq!(results[0]["replayed"], true);
    assert_eq!(results[0]["order_id"], single.json()["id"]);

    // A single POST retried with a key a batch row used first gets what that POST would have answered.
    let mut bob = order("Bob");
    bob["template_id"] = template["id"].clone();
    let replay = app
        .keyed(Method::POST, "/v1/orders", "batch-first", &bob)
        .await;
    replay.assert_status(StatusCode::CREATED);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let order_id = results[1]["order_id"].as_str().unwrap();
    assert_eq!(
        replay.header("location"),
        Some(order_path(order_id).as_str())
    );
    assert_eq!(replay.header("content-type"), Some("application/json"));
    let stored = app.get(&order_path(order_id)).await;
    assert_eq!(
        replay.body, stored.body,
        "the same bytes as the order itself"
    );
    // And the same key with other content is refused, as for any key.
    let reused = app
        .keyed(Method::POST, "/v1/orders", "batch-first", &body)
        .await;
    reused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    assert_eq!(count(&app.pool, "orders").await, 2);
}

#[sqlx::test]
async fn keys_derived_from_the_address_give_one_order_per_address(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, query) = template(&app).await;
    let file = "recipient.name,recipient.street,recipient.house_number,recipient.postal_code,recipient.city,\
                recipient.country,merge_variables.first_name\n\
                Anna,Keizersgracht,123A,1015 CJ,Amsterdam,NL,Anna\n\
                Anna,Keizersgracht,123A,1015 CJ,Amsterdam,NL,Anna\n\
                Bob,Keizersgracht,123A, 1015  cj ,Amsterdam,NL,Bob\n\
                Carol,Keizersgracht,125,1015 CJ,Amsterdam,NL,Carol\n\
                Dan,Keizersgracht,,1015 CJ,Amsterdam,NL,Dan\n";
    let response = post_csv(
        &app,
        &format!("{query}&key_from=recipient.postal_code,recipient.house_number"),
        None,
        file.to_owned(),
    )
    .await;
    response.assert_status(StatusCode::CREATED);
    let batch = response.json();
    let results = batch["results"]["data"].as_array().unwrap();
    assert_eq!(
        results[0]["idempotency_key"],
        "recipient.postal_code,recipient.house_number:1015%20cj|123A"
    );
    assert_eq!(results[1]["replayed"], true);
    assert_eq!(results[2]["idempotency_key"], results[0]["idempotency_key"]);
    assert_eq!(
        results[2]["error"]["type"],
        "/problems/idempotency-key-reused"
    );
    assert_eq!(results[3]["status"], 201);
    assert_eq!(results[4]["status"], 422);
    assert_eq!(
        results[4]["error"]["errors"][0]["field"],
        "recipient.house_number"
    );
    assert_eq!(counts(&batch), (5, 2, 1, 2));

    let unknown = post_csv(
        &app,
        &format!("{query}&key_from=recipient.zip"),
        None,
        file.to_owned(),
    )
    .await;
    assert_eq!(unknown.assert_invalid_fields(), ["key_from"]);
}

#[sqlx::test]
async fn racing_batches_and_single_posts_make_one_order_per_key(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (template, query) = template(&app).await;
    // Two files that share half their keys, in opposite orders, and single POSTs for some of the shared keys.
    let a: Vec<String> = (0..600).map(|i| line(&format!("k{i}"), "Anna")).collect();
    let b: Vec<String> = (300..900)
        .rev()
        .map(|i| line(&format!("k{i}"), "Anna"))
        .collect();
    let mut body = order("Anna");
    body["template_id"] = template["id"].clone();
    let singles = (300..320).map(|i| {
        let app = &app;
        let body = &body;
        async move {
            app.keyed(Method::POST, "/v1/orders", &format!("k{i}"), body)
                .await
                .status
        }
    });
    let (first, second, singles) = tokio::join!(
        post_csv(&app, &query, None, csv(&a)),
        post_csv(&app, &query, None, csv(&b)),
        join_all(singles),
    );
    first.assert_status(StatusCode::CREATED);
    second.assert_status(StatusCode::CREATED);
    assert!(
        singles.iter().all(|s| *s == StatusCode::CREATED),
        "{singles:?}"
    );
    let (first, second) = (first.json(), second.json());
    for batch in [&first, &second] {
        let (rows, created, replayed, failed) = counts(batch);
        assert_eq!((rows, created + replayed, failed), (600, 600, 0), "{batch}");
    }
    assert_eq!(count(&app.pool, "orders").await, 900);
    let keys: i64 = sqlx::query_scalar("SELECT count(DISTINCT key) FROM idempotency_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(keys, 900);
    // The two batches' results name the same order for every shared key.
    let rows_a = all_rows(&app, &first, "&status=201").await;
    let rows_b = all_rows(&app, &second, "&status=201").await;
    let orders_of = |rows: &[Value]| {
        rows.iter()
            .map(|r| (r["idempotency_key"].clone(), r["order_id"].clone()))
            .collect::<HashSet<_>>()
    };
    let (orders_a, orders_b) = (orders_of(&rows_a), orders_of(&rows_b));
    let shared: Vec<_> = orders_a.intersection(&orders_b).collect();
    assert_eq!(shared.len(), 300);
}

#[sqlx::test]
async fn validate_only_reports_and_writes_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, query) = template(&app).await;
    post_csv(&app, &query, None, csv(&[line("taken", "Anna")]))
        .await
        .assert_status(StatusCode::CREATED);
    let tables = [
        "orders",
        "idempotency_keys",
        "order_batches",
        "order_batch_rows",
    ];
    let mut before = Vec::new();
    for table in tables {
        before.push(count(&app.pool, table).await);
    }
    let file = csv(&[
        line("taken", "Anna"),
        line("new", "Bob"),
        line("new", "Bob"),
        line("new", "Carol"),
        line("taken", "Dan"),
        line("bad", "").replace(",NL,", ",XX,"),
    ]);
    let response = post_csv(
        &app,
        &format!("{query}&validate_only=true"),
        Some("validate-key"),
        file,
    )
    .await;
    response.assert_status(StatusCode::OK);
    let report = response.json();
    assert_eq!(counts(&report), (6, 1, 2, 3));
    let statuses: Vec<_> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_u64().unwrap(),
                r["replayed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (201, true),
            (201, false),
            (201, true),
            (422, false),
            (422, false),
            (422, false)
        ]
    );
    for (table, before) in tables.into_iter().zip(before) {
        // The batch request's own key stores its answer like any keyed POST; nothing else is written.
        let expected = before + i64::from(table == "idempotency_keys");
        assert_eq!(count(&app.pool, table).await, expected, "{table}");
    }
}

/// The dry run decides each row as the batch then takes it: replays, refusals, stored and unstored failures alike.
#[sqlx::test]
async fn validate_only_reports_what_the_batch_then_does(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, query) = template(&app).await;
    post_csv(&app, &query, None, csv(&[line("taken", "Anna")]))
        .await
        .assert_status(StatusCode::CREATED);
    let unfilled = || "unfilled,Anna,Keizersgracht,123A,1015 CJ,Amsterdam,NL,\n".to_owned();
    let bad = || line("bad", "Bob").replace(",NL,", ",XX,");
    let file = csv(&[
        line("taken", "Anna"),
        line("taken", "Dan"),
        line("new", "Bob"),
        line("new", "Bob"),
        line("new", "Carol"),
        unfilled(),
        unfilled(),
        bad(),
        bad(),
    ]);
    let report = post_csv(
        &app,
        &format!("{query}&validate_only=true"),
        None,
        file.clone(),
    )
    .await;
    report.assert_status(StatusCode::OK);
    let taken = post_csv(&app, &query, None, file).await;
    taken.assert_status(StatusCode::CREATED);

    let outline = |results: &Value| -> Vec<_> {
        results
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["row"].clone(),
                    r["status"].clone(),
                    r["replayed"].clone(),
                    r["error"].clone(),
                )
            })
            .collect()
    };
    let (report, taken) = (report.json(), taken.json());
    assert_eq!(
        outline(&report["results"]),
        outline(&taken["results"]["data"])
    );
    assert_eq!(report["counts"], taken["counts"]);
    assert_eq!(counts(&taken), (9, 1, 3, 5));
}

#[sqlx::test]
async fn a_file_over_the_limits_is_refused_whole(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |config| {
        config.batches.max_rows = 3;
        config.batches.body_limit_bytes = 2048;
        config.request_body_limit_bytes = 1024;
    })
    .await;
    let (template, query) = template(&app).await;
    let four = csv(&(0..4)
        .map(|i| line(&format!("k{i}"), "Anna"))
        .collect::<Vec<_>>());
    let response = post_csv(&app, &query, Some("over"), four.clone()).await;
    assert_eq!(response.assert_invalid_fields(), ["orders"]);
    let json_rows: Vec<Value> = (0..4).map(|_| order("A")).collect();
    let response = post_json(
        &app,
        "",
        &json!({"template_id": template["id"], "orders": json_rows}),
    )
    .await;
    assert_eq!(response.assert_invalid_fields(), ["orders"]);

    // Over the batch body limit, which is not the limit of other routes.
    let big = csv(&(0..3)
        .map(|i| line(&format!("{i}{}", "k".repeat(700)), "Anna"))
        .collect::<Vec<_>>());
    assert!(big.len() > 2048);
    let response = post_csv(&app, &query, Some("over"), big).await;
    let problem = response.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    assert!(
        problem["detail"].as_str().unwrap().contains("2048"),
        "{problem}"
    );
    let mut order = order(&"A".repeat(150));
    order["template_id"] = template["id"].clone();
    order["merge_variables"]["x"] = json!("y".repeat(1500));
    let response = app.post("/v1/orders", &order).await;
    let problem = response.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    assert!(
        problem["detail"].as_str().unwrap().contains("1024"),
        "{problem}"
    );

    for table in [
        "orders",
        "idempotency_keys",
        "order_batches",
        "order_batch_rows",
    ] {
        assert_eq!(count(&app.pool, table).await, 0, "{table}");
    }
    // The refusals stored nothing for the batch key: the corrected file may use it.
    let three = csv(&(0..3)
        .map(|i| line(&format!("k{i}"), "Anna"))
        .collect::<Vec<_>>());
    post_csv(&app, &query, Some("over"), three)
        .await
        .assert_status(StatusCode::CREATED);
}

#[sqlx::test]
async fn a_file_with_an_unknown_column_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, query) = template(&app).await;
    let file = "idempotency_key,recipient.nmae,recipient.city\nk,Anna,Amsterdam\n".to_owned();
    let response = post_csv(&app, &query, None, file).await;
    assert_eq!(response.assert_invalid_fields(), ["recipient.nmae"]);
    let response = send(
        app.request(Method::POST, "/v1/order_batches")
            .header(header::CONTENT_TYPE, "text/plain")
            .body("k"),
    )
    .await;
    response.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    assert_eq!(count(&app.pool, "order_batches").await, 0);
}

#[sqlx::test]
async fn a_retried_batch_request_replays_its_answer(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, query) = template(&app).await;
    let file = csv(&[line("r1", "Anna"), line("r2", "Bob")]);
    let first = post_csv(&app, &query, Some("upload-1"), file.clone()).await;
    first.assert_status(StatusCode::CREATED);
    let again = post_csv(&app, &query, Some("upload-1"), file.clone()).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body, "byte for byte");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(count(&app.pool, "order_batches").await, 1);
    let other = post_csv(&app, &query, Some("upload-1"), csv(&[line("r1", "Anna")])).await;
    other.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    let settings = post_csv(
        &app,
        &format!("{query}&validate_only=true"),
        Some("upload-1"),
        file,
    )
    .await;
    settings.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
}

#[sqlx::test]
async fn rows_page_in_file_order_and_batches_are_private(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, query) = template(&app).await;
    let mut lines: Vec<String> = (1..=45).map(|i| line(&format!("p{i}"), "Anna")).collect();
    lines[9] = line("p10", "").replace(",NL,", ",XX,");
    let response = post_csv(&app, &query, None, csv(&lines)).await;
    response.assert_status(StatusCode::CREATED);
    let batch = response.json();
    assert_eq!(batch["results"]["data"].as_array().unwrap().len(), 20);
    assert_eq!(batch["results"]["has_more"], true);
    let rows = all_rows(&app, &batch, "").await;
    assert_eq!(
        rows.iter()
            .map(|r| r["row"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        (1..=45).collect::<Vec<_>>()
    );
    let failed = all_rows(&app, &batch, "&status=422").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["row"], 10);
    let id = batch.id();
    let read = app.get(&format!("/v1/order_batches/{id}")).await;
    read.assert_status(StatusCode::OK);
    assert_eq!(read.json()["counts"], batch["counts"]);
    let list = app.get("/v1/order_batches").await.json();
    assert_eq!(list["data"][0]["id"], batch["id"]);

    let other = app.other_account().await;
    for path in [
        format!("/v1/order_batches/{id}"),
        format!("/v1/order_batches/{id}/rows"),
    ] {
        other
            .get(&path)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not-found");
    }
    assert_eq!(
        other.get("/v1/order_batches").await.json()["data"],
        json!([])
    );
    let bad = app
        .get(&format!(
            "/v1/order_batches/{id}/rows?status=abc&starting_after=-1"
        ))
        .await;
    let mut fields = bad.assert_invalid_fields();
    fields.sort();
    assert_eq!(fields, ["starting_after", "status"]);
}

#[sqlx::test]
async fn metadata_columns_reach_the_order_and_can_key_it(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, query) = template(&app).await;
    let file = "metadata.customer_id,metadata.campaign,recipient.name,recipient.street,recipient.house_number,\
                recipient.postal_code,recipient.city,recipient.country,merge_variables.first_name\n\
                4711,winter,Anna,Keizersgracht,123A,1015 CJ,Amsterdam,NL,Anna\n\
                4711,winter,Anna,Damrak,1,1012 LG,Amsterdam,NL,Anna\n\
                4712,winter,Bob,Damrak,1,1012 LG,Amsterdam,NL,Bob\n";
    let response = post_csv(
        &app,
        &format!("{query}&key_from=metadata.customer_id"),
        None,
        file.to_owned(),
    )
    .await;
    response.assert_status(StatusCode::CREATED);
    let batch = response.json();
    assert_eq!(counts(&batch), (3, 2, 0, 1));
    let results = batch["results"]["data"].as_array().unwrap();
    assert_eq!(results[0]["idempotency_key"], "metadata.customer_id:4711");
    assert_eq!(
        results[1]["error"]["type"],
        "/problems/idempotency-key-reused"
    );
    let order = app
        .get(&format!(
            "/v1/orders/{}",
            results[0]["order_id"].as_str().unwrap()
        ))
        .await
        .json();
    assert_eq!(
        order["metadata"],
        json!({"customer_id": "4711", "campaign": "winter"})
    );
    assert_eq!(order["template_version"], 1);
}

/// A batch waiting for a template another transaction holds gives up after `IDEMPOTENCY_WAIT_TIMEOUT_MS`, taking
/// its rows or checking them: 409 `resource-busy`, as any request. On Citus the lock is on a worker, where only the
/// transaction's own `lock_timeout` bounds the wait.
#[sqlx::test]
async fn a_batch_waiting_for_a_held_row_gives_up_within_the_wait_timeout(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let wait = Duration::from_millis(500);
    let holders = options.connect_with(connect.clone()).await.unwrap();
    let url = format!(
        "postgres://{}@{}:{}/{}",
        connect.get_username(),
        connect.get_host(),
        connect.get_port(),
        connect.get_database().unwrap()
    );
    // The request pool as the server builds it, whose `lock_timeout` is the wait timeout.
    let requests = db::pool(
        &DatabaseConfig::new(url),
        Sessions::Requests { lock_timeout: wait },
    )
    .unwrap();
    let app = TestApp::spawn_with(requests, |config| config.idempotency.wait_timeout = wait).await;
    let (template, query) = template(&app).await;
    let mut holder = holders.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM templates WHERE account_id = $1 AND id = $2::uuid FOR UPDATE")
        .bind(app.account_id)
        .bind(template["id"].as_str().unwrap())
        .execute(&mut *holder)
        .await
        .unwrap();

    for settings in ["", "&validate_only=true"] {
        let started = Instant::now();
        let busy = tokio::time::timeout(
            Duration::from_secs(5),
            post_csv(
                &app,
                &format!("{query}{settings}"),
                None,
                csv(&[line("held", "Anna")]),
            ),
        )
        .await
        .expect("the batch gives up waiting");
        busy.assert_problem(StatusCode::CONFLICT, "resource-busy");
        assert_eq!(busy.header("retry-after"), Some("1"));
        assert!(
            started.elapsed() >= wait,
            "{settings}: it waited for the lock"
        );
    }
    assert_eq!(count(&holders, "orders").await, 0);
    holder.rollback().await.unwrap();

    post_csv(&app, &query, None, csv(&[line("held", "Anna")]))
        .await
        .assert_status(StatusCode::CREATED);
}

#[sqlx::test]
async fn a_quote_that_never_closes_refuses_the_whole_file(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, query) = template(&app).await;
    // The last field of row 2 opens a quote that never closes: it would hold rows 3 and 4.
    let unterminated = csv(&[
        line("q-1", "Anna"),
        line("q-2", "Bob").replace(",Bob\n", ",\"Bob\n"),
        line("q-3", "Carol"),
        line("q-4", "Dan"),
    ]);
    // A stray quote opens row 2's second field; the quote that closes it is row 4's, and text follows it.
    let stray = csv(&[
        line("s-1", "Anna"),
        "s-2,\"Bob,Keizersgracht,123A,1015 CJ,Amsterdam,NL,Bob\n".to_owned(),
        line("s-3", "Carol"),
        line("s-4", "\"Dan\""),
    ]);
    for (file, record, opened) in [(unterminated, 2, 3), (stray, 2, 3)] {
        for query in [query.clone(), format!("{query}&validate_only=true")] {
            let response = post_csv(&app, &query, Some("quoted-batch"), file.clone()).await;
            let problem =
                response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "malformed-file");
            assert_eq!(
                (problem["record"].as_i64(), problem["line"].as_i64()),
                (Some(record), Some(opened)),
                "{problem}"
            );
        }
    }
    for table in [
        "orders",
        "idempotency_keys",
        "order_batches",
        "order_batch_rows",
    ] {
        assert_eq!(count(&app.pool, table).await, 0, "{table}");
    }
}

#[sqlx::test]
async fn row_results_name_the_line_a_record_starts_on(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, query) = template(&app).await;
    // Row 1 spans lines 2 and 3 (a quoted line break); row 2 is short and fails alone on line 4.
    let file = csv(&[
        "l-1,Anna,Keizersgracht,123A,1015 CJ,Amsterdam,NL,\"An\nna\"\n".to_owned(),
        "l-2,Bob\n".to_owned(),
        line("l-3", "Carol"),
    ]);
    let response = post_csv(&app, &query, None, file).await;
    response.assert_status(StatusCode::CREATED);
    let batch = response.json();
    let rows: Vec<_> = batch["results"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_i64().unwrap(),
                r["line"].as_i64().unwrap(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [(1, 2, 201), (2, 4, 422), (3, 5, 201)]);
    let stored = all_rows(&app, &batch, "").await;
    assert_eq!(stored[1]["line"], 4);
}
