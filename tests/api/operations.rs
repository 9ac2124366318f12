//! Operations: health checks, request ids, and the request timeout.

use reqwest::StatusCode;
use sqlx::{PgPool, postgres::PgPoolOptions};

use crate::helpers::{TestApp, send, start};

#[sqlx::test]
async fn healthz_and_readyz_answer_when_the_database_does(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = reqwest::Client::new();
    let live = send(client.get(app.url("/healthz"))).await;
    live.assert_status(StatusCode::OK);
    assert_eq!(live.json()["status"], "ok");
    let ready = send(client.get(app.url("/readyz"))).await;
    ready.assert_status(StatusCode::OK);
    assert_eq!(ready.json()["status"], "ok");
}

#[tokio::test]
async fn readyz_is_503_and_writes_are_503_while_the_database_is_unreachable() {
    // Nothing listens on port 1: the pool cannot connect.
    let pool = PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let (addr, _running) = start(pool, |_| {}).await;
    let client = reqwest::Client::new();

    send(client.get(format!("http://{addr}/healthz")))
        .await
        .assert_status(StatusCode::OK);
    let ready = send(client.get(format!("http://{addr}/readyz"))).await;
    ready.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["status"], "unavailable");
    let order = send(
        client
            .get(format!("http://{addr}/v1/orders"))
            .bearer_auth(format!("oik_{}", "a".repeat(64))),
    )
    .await;
    order.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "service-unavailable");
    assert_eq!(order.header("retry-after"), Some("1"));
}

#[sqlx::test]
async fn request_ids_are_kept_or_made(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let given = send(
        app.request(reqwest::Method::GET, "/v1/orders")
            .header("x-request-id", "trace-me-42"),
    )
    .await;
    assert_eq!(given.header("x-request-id"), Some("trace-me-42"));
    let made = app.get("/v1/orders").await;
    let id = made.header("x-request-id").expect("a generated request id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[sqlx::test]
async fn a_request_body_slower_than_the_timeout_is_408(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |config| {
        config.request_timeout = std::time::Duration::from_secs(1)
    })
    .await;
    let slow = futures_util::stream::unfold(0, |sent| async move {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        (sent < 10).then(|| (Ok::<_, std::io::Error>(b" ".to_vec()), sent + 1))
    });
    let response = send(
        app.request(reqwest::Method::POST, "/v1/templates")
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(slow)),
    )
    .await;
    response.assert_problem(StatusCode::REQUEST_TIMEOUT, "request-timeout");
}
