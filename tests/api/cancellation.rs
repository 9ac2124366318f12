//! A request whose client hangs up, or that runs past the request timeout, still finishes: its key replays it.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::helpers::{TestApp, count, order_for, send};

/// Locks the template FOR UPDATE, so that an order for it waits inside its transaction until this commits.
async fn hold_template(
    pool: &PgPool,
    template: &serde_json::Value,
) -> Transaction<'static, Postgres> {
    let id: Uuid = template["id"].as_str().unwrap().parse().unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM templates WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

async fn wait_for_key(pool: &PgPool, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored: i64 =
            sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = $1")
                .bind(key)
                .fetch_one(pool)
                .await
                .unwrap();
        if stored == 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned request never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sessions of this database left inside a transaction with nobody running a statement.
async fn idle_in_transaction(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn a_keyed_order_whose_client_hung_up_is_taken_once_and_replayed(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let template = app.create_template("<p>Hello</p>").await;
    let body = order_for(&template);
    let held = hold_template(&pool, &template).await;

    let hung_up = app
        .request(Method::POST, "/v1/orders")
        .header("idempotency-key", "hung-up")
        .json(&body)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(
        hung_up.is_err_and(|e| e.is_timeout()),
        "the client gave up first"
    );
    held.commit().await.unwrap();

    wait_for_key(&pool, "hung-up").await;
    assert_eq!(count(&pool, "orders").await, 1);
    let retry = app
        .keyed(Method::POST, "/v1/orders", "hung-up", &body)
        .await;
    retry.assert_status(StatusCode::CREATED);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        count(&pool, "orders").await,
        1,
        "the retry learned the outcome; nothing ran twice"
    );
    assert_eq!(
        idle_in_transaction(&pool).await,
        0,
        "no connection was left inside a transaction"
    );
}

#[sqlx::test]
async fn a_keyed_order_past_the_request_timeout_gets_408_then_replays_its_outcome(pool: PgPool) {
    let app = TestApp::spawn_with(pool.clone(), |config| {
        config.request_timeout = Duration::from_secs(1)
    })
    .await;
    let template = app.create_template("<p>Hello</p>").await;
    let body = order_for(&template);
    let held = hold_template(&pool, &template).await;

    let timed_out = send(
        app.request(Method::POST, "/v1/orders")
            .header("idempotency-key", "slow")
            .json(&body),
    )
    .await;
    timed_out.assert_problem(StatusCode::REQUEST_TIMEOUT, "request-timeout");
    held.commit().await.unwrap();

    wait_for_key(&pool, "slow").await;
    let retry = app.keyed(Method::POST, "/v1/orders", "slow", &body).await;
    retry.assert_status(StatusCode::CREATED);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(count(&pool, "orders").await, 1);
    assert_eq!(idle_in_transaction(&pool).await, 0);
}
