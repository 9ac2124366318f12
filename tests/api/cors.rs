//! CORS: real preflights and real cross-origin requests against a server with and without allowed origins.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{TestApp, TestResponse, send};

const APP: &str = "https://app.example.com";

async fn spawn_with_origins(pool: PgPool, origins: &str) -> TestApp {
    TestApp::spawn_with(pool, |config| {
        config.cors_allowed_origins = origins.parse().expect("origins");
    })
    .await
}

/// A browser's preflight for a keyed, conditional write from `origin`: no API key, as browsers send none.
async fn preflight(app: &TestApp, origin: &str, method: &str, path: &str) -> TestResponse {
    send(
        app.client
            .request(Method::OPTIONS, app.url(path))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization,content-type,idempotency-key,if-match,x-request-id",
            ),
    )
    .await
}

/// The comma-separated members of a header, lower-cased.
fn members(response: &TestResponse, name: &str) -> Vec<String> {
    response
        .header(name)
        .unwrap_or_default()
        .split(',')
        .map(|member| member.trim().to_ascii_lowercase())
        .filter(|member| !member.is_empty())
        .collect()
}

#[sqlx::test]
async fn a_preflight_from_an_allowed_origin_allows_the_api_s_methods_and_headers(pool: PgPool) {
    let app = spawn_with_origins(pool, "http://localhost:3000,https://app.example.com").await;
    for (method, path) in [
        ("POST", "/v1/orders"),
        (
            "PATCH",
            "/v1/templates/019ac9f1-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
        ),
        ("DELETE", "/v1/orders/019ac9f1-1a2b-7c3d-8e4f-5a6b7c8d9e0f"),
    ] {
        let answer = preflight(&app, APP, method, path).await;
        answer.assert_status(StatusCode::OK);
        assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
        let methods = members(&answer, "access-control-allow-methods");
        for allowed in ["get", "head", "post", "patch", "delete"] {
            assert!(methods.contains(&allowed.to_owned()), "{methods:?}");
        }
        assert!(!methods.contains(&"put".to_owned()), "{methods:?}");
        assert_eq!(
            members(&answer, "access-control-allow-headers"),
            [
                "authorization",
                "content-type",
                "idempotency-key",
                "if-match",
                "if-none-match",
                "x-request-id"
            ]
        );
        assert_eq!(answer.header("access-control-max-age"), Some("7200"));
        assert!(
            answer.header("access-control-allow-credentials").is_none(),
            "the key travels in Authorization, not in cookies"
        );
        assert!(members(&answer, "vary").contains(&"origin".to_owned()));
    }
    let other = preflight(&app, "http://localhost:3000", "POST", "/v1/orders").await;
    assert_eq!(
        other.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
}

#[sqlx::test]
async fn a_cross_origin_request_exposes_the_api_s_headers_on_successes_and_problems(pool: PgPool) {
    let app = spawn_with_origins(pool, APP).await;
    let created = send(
        app.request(Method::POST, "/v1/templates")
            .header("origin", APP)
            .header("idempotency-key", "cors-1")
            .json(&json!({"name": "Card", "format": "postcard_a6", "content": "<p>Hi</p>"})),
    )
    .await;
    created.assert_status(StatusCode::CREATED);
    assert_eq!(created.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        members(&created, "access-control-expose-headers"),
        [
            "location",
            "idempotent-replayed",
            "etag",
            "retry-after",
            "x-request-id",
            "ratelimit",
            "ratelimit-policy"
        ]
    );

    // A replay and a problem carry the same headers, so a script can read `Idempotent-Replayed` and error bodies.
    let replayed = send(
        app.request(Method::POST, "/v1/templates")
            .header("origin", APP)
            .header("idempotency-key", "cors-1")
            .json(&json!({"name": "Card", "format": "postcard_a6", "content": "<p>Hi</p>"})),
    )
    .await;
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.header("access-control-allow-origin"), Some(APP));
    assert_eq!(replayed.body, created.body);

    let unauthorized = send(app.client.get(app.url("/v1/orders")).header("origin", APP)).await;
    unauthorized.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        unauthorized.header("access-control-allow-origin"),
        Some(APP)
    );
}

#[sqlx::test]
async fn another_origin_gets_no_cors_headers(pool: PgPool) {
    let app = spawn_with_origins(pool, APP).await;
    for origin in [
        "https://evil.example.com",
        "https://app.example.com.evil.example",
        "null",
    ] {
        let answer = preflight(&app, origin, "POST", "/v1/orders").await;
        assert!(
            answer.header("access-control-allow-origin").is_none(),
            "{origin}: {:?}",
            answer.headers
        );
        let answer = send(
            app.request(Method::GET, "/v1/orders")
                .header("origin", origin),
        )
        .await;
        answer.assert_status(StatusCode::OK);
        assert!(
            answer.header("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
}

#[sqlx::test]
async fn without_allowed_origins_cors_is_off(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let answer = preflight(&app, APP, "POST", "/v1/orders").await;
    answer.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    assert!(
        !answer
            .headers
            .keys()
            .any(|name| name.as_str().starts_with("access-control-")),
        "{:?}",
        answer.headers
    );
    let answer = send(app.request(Method::GET, "/v1/orders").header("origin", APP)).await;
    answer.assert_status(StatusCode::OK);
    assert!(answer.header("access-control-allow-origin").is_none());
}
