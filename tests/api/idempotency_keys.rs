//! Key inspection: what was stored for a key, read without creating or changing anything.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use crate::helpers::{TestApp, count, expire_key, order_for};

/// The key as a path segment: every byte but letters and digits percent-encoded.
pub fn encoded(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn time(value: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("a time"), &Rfc3339).expect("RFC 3339")
}

/// The key rows as they are, to show that inspection changes none.
async fn key_rows(app: &TestApp) -> Vec<(String, OffsetDateTime)> {
    sqlx::query_as("SELECT key, created_at FROM idempotency_keys ORDER BY key")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_key_tells_its_request_its_status_and_the_resource_it_created(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hello</p>").await;
    let key = "order 4711/Keizersgracht?123A#1";
    let created = app
        .keyed(Method::POST, "/v1/orders", key, &order_for(&template))
        .await;
    created.assert_status(StatusCode::CREATED);
    let before = key_rows(&app).await;

    let path = format!("/v1/idempotency_keys/{}", encoded(key));
    let response = app.get(&path).await;
    response.assert_status(StatusCode::OK);
    let record = response.json();
    assert_eq!(record["key"], key);
    assert_eq!(record["method"], "POST");
    assert_eq!(record["path"], "/v1/orders");
    assert_eq!(record["status"], 201);
    assert_eq!(record["resource"], created.header("location").unwrap());
    assert_eq!(
        time(&record["expires_at"]) - time(&record["created_at"]),
        Duration::hours(24)
    );
    assert!(time(&record["created_at"]) <= OffsetDateTime::now_utc());

    // A GET changes nothing, however often it is asked.
    assert_eq!(app.get(&path).await.json(), record);
    assert_eq!(key_rows(&app).await, before);
    assert_eq!(count(&app.pool, "orders").await, 1);
}

#[sqlx::test]
async fn a_stored_failure_is_reported_without_a_resource(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let unknown = "/v1/orders/019ac9f1-1a2b-7c3d-8e4f-5a6b7c8d9e0f";
    app.keyed(
        Method::PATCH,
        unknown,
        "patch-1",
        &json!({"send_date": null}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not-found");
    let record = app.get("/v1/idempotency_keys/patch-1").await.json();
    assert_eq!(record["method"], "PATCH");
    assert_eq!(record["path"], unknown);
    assert_eq!(record["status"], 404);
    assert_eq!(record["resource"], serde_json::Value::Null);
}

#[sqlx::test]
async fn unknown_expired_foreign_and_impossible_keys_are_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = json!({"name": "Welcome", "format": "postcard_a6", "content": "<p>Hi</p>"});
    for key in ["mine-1", "lapsed-2"] {
        app.keyed(Method::POST, "/v1/templates", key, &template)
            .await
            .assert_status(StatusCode::CREATED);
    }
    expire_key(&app.pool, "lapsed-2").await;
    let other = app.other_account().await;
    let before = key_rows(&app).await;

    let not_found = [
        (&app, "unknown-3".to_owned()),
        (&app, "lapsed-2".to_owned()),
        (&other, "mine-1".to_owned()),
        (&app, "k".repeat(256)),
        (&app, "%7F".to_owned()),
        (&app, "%FF%FE".to_owned()),
    ];
    for (account, segment) in not_found {
        let response = account
            .get(&format!("/v1/idempotency_keys/{segment}"))
            .await;
        let problem = response.assert_problem(StatusCode::NOT_FOUND, "not-found");
        assert!(
            !problem["detail"].as_str().unwrap().contains(&segment),
            "the key is not repeated: {problem}"
        );
    }
    app.get("/v1/idempotency_keys/mine-1")
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(key_rows(&app).await, before, "nothing created or changed");
}

#[sqlx::test]
async fn a_quoted_key_is_found_by_its_value(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = json!({"name": "Welcome", "format": "postcard_a6", "content": "<p>Hi</p>"});
    app.keyed(Method::POST, "/v1/templates", r#""abc""#, &template)
        .await
        .assert_status(StatusCode::CREATED);
    for segment in ["abc", "%22abc%22"] {
        let response = app.get(&format!("/v1/idempotency_keys/{segment}")).await;
        response.assert_status(StatusCode::OK);
        assert_eq!(response.json()["key"], "abc");
    }
}
