//! Rate limits: a token bucket per account, 429 with Retry-After and the RateLimit fields, nothing stored.

use std::time::Duration;

use order_intake::config::RateLimitConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{TestApp, count};

async fn limited_app(pool: PgPool) -> TestApp {
    TestApp::spawn_with(pool, |config| {
        config.rate_limit = RateLimitConfig {
            requests_per_second: 1,
            burst: 3,
        };
    })
    .await
}

/// Sends requests until the account's bucket is empty (a bucket refills by one a second, so a slow machine may need
/// more than three), and gives the 429.
async fn flood(app: &TestApp) -> crate::helpers::TestResponse {
    for _ in 0..10 {
        let response = app.get("/v1/orders").await;
        if response.status == StatusCode::TOO_MANY_REQUESTS {
            return response;
        }
        response.assert_status(StatusCode::OK);
    }
    panic!("ten requests and no 429");
}

#[sqlx::test]
async fn a_flooding_account_gets_429_while_another_is_served(pool: PgPool) {
    let flooding = limited_app(pool).await;
    let other = flooding.other_account().await;

    let first = flooding.get("/v1/orders").await;
    first.assert_status(StatusCode::OK);
    assert_eq!(
        first.header("ratelimit-policy"),
        Some(r#""account";q=3;w=3"#)
    );
    assert_eq!(first.header("ratelimit"), Some(r#""account";r=2;t=1"#));
    let limited = flood(&flooding).await;
    let problem = limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert!(problem["detail"].as_str().unwrap().contains("retry after"));
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(
        limited.header("ratelimit-policy"),
        Some(r#""account";q=3;w=3"#)
    );
    assert_eq!(limited.header("ratelimit"), Some(r#""account";r=0;t=3"#));

    // The other account has a bucket of its own.
    for _ in 0..3 {
        other.get("/v1/orders").await.assert_status(StatusCode::OK);
    }
    flooding
        .get("/v1/templates")
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
}

#[sqlx::test]
async fn a_429_is_not_stored_under_the_idempotency_key(pool: PgPool) {
    let app = limited_app(pool).await;
    let template = json!({"name": "Welcome", "format": "postcard_a6", "content": "<p>Hi</p>"});
    flood(&app).await;
    let limited = app
        .keyed(Method::POST, "/v1/templates", "welcome-1", &template)
        .await;
    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(count(&app.pool, "idempotency_keys").await, 0);
    assert_eq!(count(&app.pool, "templates").await, 0);

    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let retried = app
        .keyed(Method::POST, "/v1/templates", "welcome-1", &template)
        .await;
    retried.assert_status(StatusCode::CREATED);
    assert_eq!(retried.header("idempotent-replayed"), None, "it ran");
    assert_eq!(count(&app.pool, "templates").await, 1);
}

#[sqlx::test]
async fn without_a_rate_there_is_no_limit(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    for _ in 0..20 {
        let response = app.get("/v1/orders").await;
        response.assert_status(StatusCode::OK);
        assert_eq!(response.header("ratelimit"), None);
    }
}
