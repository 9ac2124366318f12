//! Authentication and tenant isolation: every account sees only its own objects.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{Object, TestApp, address, order_path, send, template_path};

#[sqlx::test]
async fn requests_without_a_valid_key_get_401(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = reqwest::Client::new();
    let url = app.url("/v1/orders");

    let missing = send(client.get(&url)).await;
    missing.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));

    let wrong_scheme = send(client.get(&url).basic_auth("user", Some("pass"))).await;
    wrong_scheme.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");

    let unknown_key = format!("oik_{}", "0".repeat(64));
    let malformed_key = "oik_short".to_owned();
    for key in [unknown_key, malformed_key] {
        let response = send(client.get(&url).bearer_auth(key)).await;
        response.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(
            response.header("www-authenticate"),
            Some(r#"Bearer error="invalid_token""#)
        );
    }

    let post = send(client.post(app.url("/v1/templates")).json(&json!({}))).await;
    post.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[sqlx::test]
async fn other_accounts_objects_are_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    let template_path = template_path(order["template_id"].as_str().expect("template_id"));
    let order_path = order_path(order.id());
    let other = app.other_account().await;

    for (method, path) in [
        (Method::GET, &template_path),
        (Method::PATCH, &template_path),
        (Method::DELETE, &template_path),
        (Method::GET, &order_path),
        (Method::PATCH, &order_path),
        (Method::DELETE, &order_path),
    ] {
        let response = send(other.request(method.clone(), path).json(&json!({}))).await;
        response.assert_problem(StatusCode::NOT_FOUND, "not-found");
    }
    for path in ["/v1/templates", "/v1/orders"] {
        let list = other.get(path).await;
        list.assert_status(StatusCode::OK);
        assert_eq!(list.json()["data"], json!([]));
    }
    // The owner still sees both, unchanged.
    assert_eq!(app.get(&order_path).await.json(), order);
    assert_eq!(
        app.get("/v1/templates").await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[sqlx::test]
async fn an_order_cannot_use_another_accounts_template_even_in_the_database(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let other = app.other_account().await;
    let result = sqlx::query(
        "INSERT INTO orders (id, account_id, template_id, template_version, recipient) VALUES ($1, $2, $3, 1, $4)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(other.account_id)
    .bind(template.uuid())
    .bind(address())
    .execute(&app.pool)
    .await;
    assert!(
        result.is_err(),
        "the foreign key must hold orders to their own account's templates"
    );
}

/// The `last_used_at` of the default account's key.
async fn last_used_at(app: &TestApp) -> Option<time::OffsetDateTime> {
    sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE account_id = $1")
        .bind(app.account_id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_keys_use_is_recorded_at_most_once_a_minute(pool: PgPool) {
    // Every request checks its key here; with API_KEY_CACHE_SECONDS a check happens at most that often per server,
    // and the rule below applies to each check.
    let app = TestApp::spawn_with(pool, |config| config.api_key_cache_ttl = Duration::ZERO).await;
    assert_eq!(last_used_at(&app).await, None);
    app.get("/v1/orders").await.assert_status(StatusCode::OK);
    let first = last_used_at(&app).await.expect("the first use is recorded");

    for _ in 0..5 {
        app.get("/v1/orders").await.assert_status(StatusCode::OK);
    }
    assert_eq!(
        last_used_at(&app).await,
        Some(first),
        "no write per request"
    );

    let age = |seconds: i32| {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = now() - make_interval(secs => $2) WHERE account_id = $1
             RETURNING last_used_at",
        )
        .bind(app.account_id)
        .bind(f64::from(seconds))
    };
    age(50).execute(&app.pool).await.unwrap();
    let fifty_seconds_ago = last_used_at(&app).await;
    app.get("/v1/orders").await.assert_status(StatusCode::OK);
    assert_eq!(
        last_used_at(&app).await,
        fifty_seconds_ago,
        "within the minute"
    );

    age(61).execute(&app.pool).await.unwrap();
    let a_minute_ago = last_used_at(&app).await.unwrap();
    app.get("/v1/orders").await.assert_status(StatusCode::OK);
    let recorded = last_used_at(&app).await.unwrap();
    assert!(
        recorded > a_minute_ago + time::Duration::seconds(60),
        "{recorded}"
    );
}

/// Revokes the default account's keys behind the server's back, as `order-intake api-keys revoke` does.
async fn revoke_keys(app: &TestApp) {
    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE account_id = $1")
        .bind(app.account_id)
        .execute(&app.pool)
        .await
        .unwrap();
}

#[sqlx::test]
async fn a_revoked_key_is_refused_within_the_cache_period(pool: PgPool) {
    let period = Duration::from_secs(1);
    let app = TestApp::spawn_with(pool, |config| config.api_key_cache_ttl = period).await;
    app.get("/v1/orders").await.assert_status(StatusCode::OK);
    revoke_keys(&app).await;
    let revoked = Instant::now();
    loop {
        let response = app.get("/v1/orders").await;
        if response.status == StatusCode::UNAUTHORIZED {
            response.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
            break;
        }
        response.assert_status(StatusCode::OK);
        assert!(
            revoked.elapsed() <= period + Duration::from_millis(500),
            "still accepted {:?} after the revocation",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once refused, refused on every request: a revoked key is never kept.
    for _ in 0..3 {
        let response = app.get("/v1/orders").await;
        response.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[sqlx::test]
async fn a_checked_key_is_kept_for_the_cache_period_and_not_without_one(pool: PgPool) {
    // A period no test run outlasts: what the server answers after the revocation is what it kept.
    let kept = TestApp::spawn_with(pool.clone(), |config| {
        config.api_key_cache_ttl = Duration::from_secs(3600)
    })
    .await;
    let checked_each_time =
        TestApp::spawn_with(pool, |config| config.api_key_cache_ttl = Duration::ZERO).await;
    kept.get("/v1/orders").await.assert_status(StatusCode::OK);
    for app in [&kept, &checked_each_time] {
        revoke_keys(app).await;
    }
    // The first server checked its key before the revocation and keeps it; the second checks every request.
    kept.get("/v1/orders").await.assert_status(StatusCode::OK);
    checked_each_time
        .get("/v1/orders")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    // A key the first server never checked is checked now, and refused.
    let unchecked = send(
        kept.client
            .get(kept.url("/v1/orders"))
            .bearer_auth(&checked_each_time.api_key),
    )
    .await;
    unchecked.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[sqlx::test]
async fn a_new_key_works_from_its_first_request_on_a_server_that_refused_it(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let key = order_intake::http::auth::ApiKey::generate().unwrap();
    let refused = send(
        app.client
            .get(app.url("/v1/orders"))
            .bearer_auth(&key.secret),
    )
    .await;
    refused.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    order_intake::db::api_keys::insert(&app.pool, app.account_id, &key.hash, key.prefix())
        .await
        .unwrap();
    let accepted = send(
        app.client
            .get(app.url("/v1/orders"))
            .bearer_auth(&key.secret),
    )
    .await;
    accepted.assert_status(StatusCode::OK);
}
