//! Passing database faults, provoked for real: a request they stop stores nothing, and its retry runs.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use uuid::Uuid;

use crate::helpers::{TestApp, TestResponse, address, count, eventually, order_for, send};

async fn keys_of(pool: &PgPool, key: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = $1")
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn id_of(object: &serde_json::Value) -> Uuid {
    object["id"].as_str().unwrap().parse().unwrap()
}

/// Waits until some session of this database other than the caller's waits for a lock.
async fn wait_for_a_lock_wait(pool: &PgPool) {
    eventually(Duration::from_secs(10), || async move {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        match waiting {
            0 => Err("no request waits for a lock yet".to_owned()),
            _ => Ok(()),
        }
    })
    .await;
}

#[track_caller]
fn assert_retry_later(response: &TestResponse, status: StatusCode, slug: &str) {
    response.assert_problem(status, slug);
    assert_eq!(response.header("retry-after"), Some("1"));
}

/// A real deadlock: the request locks the order and waits for the template, which another transaction holds while
/// it waits for the order. The database rolls the request back (its deadlock check runs first), which is a passing
/// conflict: 409 `resource-busy`, nothing stored, and the retry with the same key runs.
#[sqlx::test]
async fn a_deadlock_is_not_stored_and_the_retry_runs(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let template = app.create_template("<p>Hello {{name}}</p>").await;
    let created = app
        .post(
            "/v1/orders",
            &json!({"template_id": template["id"], "recipient": address(), "merge_variables": {"name": "Anna"}}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    let order = created.json();
    let path = format!("/v1/orders/{}", order["id"].as_str().unwrap());
    let change = json!({"merge_variables": {"name": "Bea"}});

    let mut other = pool.begin().await.unwrap();
    // The other transaction checks for deadlocks much later than the request (1 s), so the request is the victim.
    sqlx::query("SET LOCAL deadlock_timeout = '60s'")
        .execute(&mut *other)
        .await
        .unwrap();
    sqlx::query("SELECT 1 FROM templates WHERE id = $1 FOR UPDATE")
        .bind(id_of(&template))
        .execute(&mut *other)
        .await
        .unwrap();
    let patch = tokio::spawn(send(
        app.request(Method::PATCH, &path)
            .header("idempotency-key", "deadlock")
            .json(&change),
    ));
    wait_for_a_lock_wait(&pool).await;
    let order_id = id_of(&order);
    let closing = tokio::spawn(async move {
        sqlx::query("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE")
            .bind(order_id)
            .execute(&mut *other)
            .await
            .unwrap();
        other
    });

    let response = patch.await.unwrap();
    assert_retry_later(&response, StatusCode::CONFLICT, "resource-busy");
    assert_eq!(keys_of(&pool, "deadlock").await, 0, "nothing is stored");
    closing.await.unwrap().rollback().await.unwrap();

    let retry = app.keyed(Method::PATCH, &path, "deadlock", &change).await;
    retry.assert_status(StatusCode::OK);
    assert_eq!(retry.header("idempotent-replayed"), None, "the retry ran");
    assert_eq!(retry.json()["merge_variables"]["name"], "Bea");
    assert_eq!(keys_of(&pool, "deadlock").await, 1);
}

/// A statement timeout an operator set on the database (here shorter than the lock timeout) strikes while the
/// request waits for a row another session holds: 503 with `Retry-After`, nothing stored, and the retry runs.
#[sqlx::test]
async fn a_statement_timeout_set_on_the_database_is_not_stored(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let setup = options.connect_with(connect.clone()).await.unwrap();
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&setup)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"ALTER DATABASE "{database}" SET statement_timeout = '500ms'"#
    )))
    .execute(&setup)
    .await
    .unwrap();
    // Sessions opened from now on have the timeout.
    let pool = PgPoolOptions::new().connect_with(connect).await.unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let template = app.create_template("<p>Hello</p>").await;
    let body = order_for(&template);

    let mut holder = setup.begin().await.unwrap();
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *holder)
        .await
        .unwrap();
    sqlx::query("SELECT 1 FROM templates WHERE id = $1 FOR UPDATE")
        .bind(id_of(&template))
        .execute(&mut *holder)
        .await
        .unwrap();
    let timed_out = app
        .keyed(Method::POST, "/v1/orders", "timed-out", &body)
        .await;
    assert_retry_later(
        &timed_out,
        StatusCode::SERVICE_UNAVAILABLE,
        "service-unavailable",
    );
    assert_eq!(keys_of(&pool, "timed-out").await, 0, "nothing is stored");
    assert_eq!(count(&pool, "orders").await, 0);
    holder.rollback().await.unwrap();

    let retry = app
        .keyed(Method::POST, "/v1/orders", "timed-out", &body)
        .await;
    retry.assert_status(StatusCode::CREATED);
    assert_eq!(retry.header("idempotent-replayed"), None, "the retry ran");
    assert_eq!(count(&pool, "orders").await, 1);
}
