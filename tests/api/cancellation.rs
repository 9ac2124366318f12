//! A request whose client hangs up, or that runs past the request timeout, still finishes: its key replays it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use sqlx::PgPool;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{TestApp, count, eventually, order_for, send};

async fn wait_for_key(pool: &PgPool, key: &str) {
    eventually(Duration::from_secs(10), || async move {
        let stored: i64 =
            sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = $1")
                .bind(key)
                .fetch_one(pool)
                .await
                .unwrap();
        match stored {
            1 => Ok(()),
            _ => Err("the abandoned request never finished".to_owned()),
        }
    })
    .await;
}

/// Asserts that no session of this database stays inside a transaction with nobody running a statement.
///
/// A replay drops its read-only transaction and the rollback travels with the connection's way back to the pool,
/// so a session may show as idle in transaction for an instant; one that stays so was leaked.
async fn assert_no_transaction_left_open(pool: &PgPool) {
    eventually(Duration::from_secs(5), || async move {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        match open {
            0 => Ok(()),
            _ => Err(format!("{open} connection(s) left inside a transaction")),
        }
    })
    .await;
}

#[sqlx::test]
async fn a_keyed_order_whose_client_hung_up_is_taken_once_and_replayed(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let template = app.create_template("<p>Hello</p>").await;
    let body = order_for(&template);
    let held = app.hold_orders_for(&template).await;

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
    assert_no_transaction_left_open(&pool).await;
}

#[sqlx::test]
async fn a_keyed_order_past_the_request_timeout_gets_504_then_replays_its_outcome(pool: PgPool) {
    let app = TestApp::spawn_with(pool.clone(), |config| {
        config.request_timeout = Duration::from_secs(1)
    })
    .await;
    let template = app.create_template("<p>Hello</p>").await;
    let body = order_for(&template);
    let held = app.hold_orders_for(&template).await;

    let timed_out = send(
        app.request(Method::POST, "/v1/orders")
            .header("idempotency-key", "slow")
            .json(&body),
    )
    .await;
    // It runs on, so whether it is applied is not known yet: not a 408 that invites a blind retry.
    timed_out.assert_problem(StatusCode::GATEWAY_TIMEOUT, "outcome-unknown");
    assert_eq!(timed_out.header("retry-after"), Some("1"));
    held.commit().await.unwrap();

    wait_for_key(&pool, "slow").await;
    let retry = app.keyed(Method::POST, "/v1/orders", "slow", &body).await;
    retry.assert_status(StatusCode::CREATED);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(count(&pool, "orders").await, 1);
    assert_no_transaction_left_open(&pool).await;
}

#[sqlx::test]
async fn a_body_that_arrives_after_the_408_never_runs(pool: PgPool) {
    let app = TestApp::spawn_with(pool.clone(), |config| {
        config.request_timeout = Duration::from_secs(1)
    })
    .await;
    let template = app.create_template("<p>Hello</p>").await;
    let body = order_for(&template).to_string();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);

    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/orders HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Idempotency-Key: late-body\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        app.api_key,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer within the timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // The rest of the body, too late: the server may have closed the connection already.
    let _ = stream.write_all(rest).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(
        count(&pool, "orders").await,
        0,
        "a request whose body came late never ran"
    );
    assert_eq!(count(&pool, "idempotency_keys").await, 0);
    let retry = app
        .keyed(
            Method::POST,
            "/v1/orders",
            "late-body",
            &order_for(&template),
        )
        .await;
    retry.assert_status(StatusCode::CREATED);
    assert_eq!(
        retry.header("idempotent-replayed"),
        None,
        "the key was still free"
    );
}
