//! Idempotency keys, rule by rule: scope, fingerprint, replay, stored failures, concurrency, retention, sweeping.

use std::{sync::Arc, time::Duration};

use futures_util::future::join_all;
use reqwest::{Method, StatusCode, header::HeaderValue};
use serde_json::{Value, json};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio_util::sync::CancellationToken;

use crate::helpers::{
    Object, TestApp, TestResponse, count, expire_key, keys_of, order_for, order_path, send,
    template_path,
};
use order_intake::{
    db::idempotency_keys::{self, StoredResponse},
    idempotency::sweeper::{self, Sweep},
    metrics::Metrics,
};

#[track_caller]
fn assert_replay_of(replay: &TestResponse, original: &TestResponse) {
    assert_eq!(replay.status, original.status);
    assert_eq!(replay.body, original.body, "byte for byte");
    assert_eq!(
        replay.header("content-type"),
        original.header("content-type")
    );
    assert_eq!(replay.header("location"), original.header("location"));
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(original.header("idempotent-replayed"), None);
    assert_ne!(
        replay.header("x-request-id"),
        original.header("x-request-id")
    );
}

// 1. Where

#[sqlx::test]
async fn a_retried_post_creates_one_order_and_gets_the_first_answer(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let first = app
        .keyed(Method::POST, "/v1/orders", "order-1", &order_for(&template))
        .await;
    first.assert_status(StatusCode::CREATED);
    for _ in 0..3 {
        let again = app
            .keyed(Method::POST, "/v1/orders", "order-1", &order_for(&template))
            .await;
        assert_replay_of(&again, &first);
    }
    assert_eq!(count(&app.pool, "orders").await, 1);
    assert_eq!(keys_of(&app.pool, "order-1").await, 1);
}

#[sqlx::test]
async fn without_a_key_every_request_runs(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    for _ in 0..2 {
        let response = app.post("/v1/orders", &order_for(&template)).await;
        response.assert_status(StatusCode::CREATED);
        assert_eq!(response.header("idempotent-replayed"), None);
    }
    assert_eq!(count(&app.pool, "orders").await, 2);
    assert_eq!(count(&app.pool, "idempotency_keys").await, 0);
}

#[sqlx::test]
async fn get_and_delete_ignore_the_header(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    let path = order_path(order.id());
    for key in ["k", "", "\t bad \t", &"x".repeat(300)] {
        let get = send(
            app.request(Method::GET, &path)
                .header("idempotency-key", key),
        )
        .await;
        get.assert_status(StatusCode::OK);
        assert_eq!(get.header("idempotent-replayed"), None);
        let list = send(
            app.request(Method::GET, "/v1/orders")
                .header("idempotency-key", key),
        )
        .await;
        list.assert_status(StatusCode::OK);
    }
    let first = send(
        app.request(Method::DELETE, &path)
            .header("idempotency-key", "cancel"),
    )
    .await;
    first.assert_status(StatusCode::OK);
    let second = send(
        app.request(Method::DELETE, &path)
            .header("idempotency-key", "cancel"),
    )
    .await;
    second.assert_status(StatusCode::OK);
    assert_eq!(second.header("idempotent-replayed"), None);
    assert_eq!(count(&app.pool, "idempotency_keys").await, 0);
}

#[sqlx::test]
async fn a_key_can_be_made_mandatory(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |config| config.idempotency.key_required = true).await;
    let template = app
        .keyed(
            Method::POST,
            "/v1/templates",
            "t",
            &json!({"name": "n", "format": "postcard_a6", "content": "x"}),
        )
        .await;
    template.assert_status(StatusCode::CREATED);
    let template = template.json();
    app.post("/v1/orders", &order_for(&template))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "idempotency-key-required");
    let path = template_path(template.id());
    app.patch(&path, &json!({"name": "m"}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "idempotency-key-required");
    app.get("/v1/orders").await.assert_status(StatusCode::OK);
    assert_eq!(count(&app.pool, "orders").await, 0);
}

// 2. The key

#[sqlx::test]
async fn keys_are_1_to_255_printable_ascii_characters(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let longest = "k".repeat(255);
    for key in [longest.as_str(), "3511 AB 12", "~"] {
        let response = app
            .keyed(Method::POST, "/v1/orders", key, &order_for(&template))
            .await;
        response.assert_status(StatusCode::CREATED);
    }
    assert_eq!(keys_of(&app.pool, &longest).await, 1);

    let too_long = "k".repeat(256);
    let bad: [&[u8]; 5] = [
        too_long.as_bytes(),
        b"",
        b"tab\there",
        "caf\u{e9}".as_bytes(),
        b"\"unclosed",
    ];
    for key in bad {
        let response = send(
            app.request(Method::POST, "/v1/orders")
                .header("idempotency-key", HeaderValue::from_bytes(key).unwrap())
                .json(&order_for(&template)),
        )
        .await;
        response.assert_problem(StatusCode::BAD_REQUEST, "invalid-idempotency-key");
    }
    let twice = send(
        app.request(Method::POST, "/v1/orders")
            .header("idempotency-key", "a")
            .header("idempotency-key", "b")
            .json(&order_for(&template)),
    )
    .await;
    twice.assert_problem(StatusCode::BAD_REQUEST, "invalid-idempotency-key");
    assert_eq!(count(&app.pool, "orders").await, 3);
    assert_eq!(count(&app.pool, "idempotency_keys").await, 3);
}

/// The longest header value the server accepts, a 255-character key with every character escaped, is within the
/// `maxLength` the OpenAPI document gives the header, so a client that validates against it can send it.
#[sqlx::test]
async fn the_longest_quoted_key_fits_the_documented_header(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let longest = format!("\"{}\"", "\\\"".repeat(255));
    let response = app
        .keyed(Method::POST, "/v1/orders", &longest, &order_for(&template))
        .await;
    response.assert_status(StatusCode::CREATED);
    assert_eq!(keys_of(&app.pool, &"\"".repeat(255)).await, 1);

    let spec = order_intake::api::openapi().to_json().unwrap();
    let spec: Value = serde_json::from_str(&spec).unwrap();
    let key = spec["paths"]["/v1/orders"]["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .unwrap();
    let max_length = key["schema"]["maxLength"].as_u64().unwrap();
    assert!(
        longest.len() as u64 <= max_length,
        "{} characters are accepted, {max_length} documented",
        longest.len()
    );
}

/// An id in upper case names the same object as in lower case, so a retry that spells it differently is the same
/// request and replays, rather than a false `idempotency-key-reused`.
#[sqlx::test]
async fn an_id_spelled_in_another_case_is_the_same_request(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    let id = order.id();
    let change = json!({"send_date": null});
    let lower = app
        .keyed(Method::PATCH, &order_path(id), "case", &change)
        .await;
    lower.assert_status(StatusCode::OK);
    let upper = app
        .keyed(
            Method::PATCH,
            &format!("/v1/orders/{}", id.to_uppercase()),
            "case",
            &change,
        )
        .await;
    assert_replay_of(&upper, &lower);

    let other = app.create_order().await;
    let elsewhere = app
        .keyed(Method::PATCH, &order_path(other.id()), "case", &change)
        .await;
    elsewhere.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
}

#[sqlx::test]
async fn a_quoted_key_is_the_same_key(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let plain = app
        .keyed(Method::POST, "/v1/orders", "abc", &order_for(&template))
        .await;
    plain.assert_status(StatusCode::CREATED);
    let quoted = app
        .keyed(Method::POST, "/v1/orders", "\"abc\"", &order_for(&template))
        .await;
    assert_replay_of(&quoted, &plain);
    assert_eq!(count(&app.pool, "orders").await, 1);
}

// 3. Scope

#[sqlx::test]
async fn the_same_key_from_two_accounts_names_two_requests(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let other = app.other_account().await;
    let mine = app.create_template("<p>Hi</p>").await;
    let theirs = other.create_template("<p>Hi</p>").await;
    let a = app
        .keyed(Method::POST, "/v1/orders", "shared", &order_for(&mine))
        .await;
    let b = other
        .keyed(Method::POST, "/v1/orders", "shared", &order_for(&theirs))
        .await;
    a.assert_status(StatusCode::CREATED);
    b.assert_status(StatusCode::CREATED);
    assert_eq!(b.header("idempotent-replayed"), None);
    assert_ne!(a.json()["id"], b.json()["id"]);
    // The other account can never replay this account's answer, even with the very same body.
    let c = other
        .keyed(Method::POST, "/v1/orders", "mine-only", &order_for(&mine))
        .await;
    app.keyed(Method::POST, "/v1/orders", "mine-only", &order_for(&mine))
        .await
        .assert_status(StatusCode::CREATED);
    c.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "template-not-found");
    assert_eq!(count(&app.pool, "orders").await, 3);
}

// 4. The fingerprint

#[sqlx::test]
async fn member_order_and_whitespace_do_not_break_a_replay(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>{{a}} {{b}}</p>").await;
    let id = template.id();
    let compact = format!(
        r#"{{"template_id":"{id}","merge_variables":{{"a":"1","b":"2"}},"recipient":{{"name":"N","street":"S","house_number":"1","postal_code":"P","city":"C","country":"NL"}}}}"#
    );
    let spaced = format!(
        "{{\n  \"recipient\": {{\"country\": \"NL\", \"city\": \"C\", \"postal_code\": \"P\", \"house_number\": \"1\", \"street\": \"S\", \"name\": \"N\"}},\n  \"merge_variables\": {{ \"b\": \"2\", \"a\": \"1\" }},\n  \"template_id\": \"{id}\"\n}}"
    );
    let post = |body: String| {
        send(
            app.request(Method::POST, "/v1/orders")
                .header("idempotency-key", "k")
                .header("content-type", "application/json")
                .body(body),
        )
    };
    let first = post(compact).await;
    first.assert_status(StatusCode::CREATED);
    assert_replay_of(&post(spaced).await, &first);
    assert_eq!(count(&app.pool, "orders").await, 1);
}

#[sqlx::test]
async fn a_key_reused_for_another_request_is_rejected_and_nothing_runs(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let first = app
        .keyed(Method::POST, "/v1/orders", "k", &order_for(&template))
        .await;
    first.assert_status(StatusCode::CREATED);
    let mut other_body = order_for(&template);
    other_body["recipient"]["city"] = json!("Delft");
    let template_path = template_path(template.id());
    let order_path = order_path(&first.id());
    let reuses = [
        app.keyed(Method::POST, "/v1/orders", "k", &other_body)
            .await,
        app.keyed(
            Method::POST,
            "/v1/templates",
            "k",
            &json!({"name": "n", "format": "postcard_a6", "content": "x"}),
        )
        .await,
        app.keyed(
            Method::PATCH,
            &template_path,
            "k",
            &json!({"name": "renamed"}),
        )
        .await,
        app.keyed(Method::PATCH, &order_path, "k", &json!({"send_date": null}))
            .await,
    ];
    for response in reuses {
        response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    }
    assert_eq!(count(&app.pool, "orders").await, 1);
    assert_eq!(count(&app.pool, "templates").await, 1);
    assert_eq!(app.get(&template_path).await.json()["version"], 1);
    // The key still answers for its own request.
    assert_replay_of(
        &app.keyed(Method::POST, "/v1/orders", "k", &order_for(&template))
            .await,
        &first,
    );
}

// 5. What is stored

#[sqlx::test]
async fn the_key_row_commits_with_the_write(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let response = app
        .keyed(
            Method::POST,
            "/v1/orders",
            "with-row",
            &order_for(&template),
        )
        .await;
    response.assert_status(StatusCode::CREATED);
    let (status, body, headers): (i16, Vec<u8>, Value) = sqlx::query_as(
        "SELECT response_status, response_body, response_headers FROM idempotency_keys WHERE account_id = $1 AND key = $2",
    )
    .bind(app.account_id)
    .bind("with-row")
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(status, 201);
    assert_eq!(body, response.body);
    let location = headers
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "location")
        .unwrap();
    assert_eq!(location[1], response.header("location").unwrap());
}

// 6. Failures are stored too

#[sqlx::test]
async fn endpoint_failures_are_stored_and_replayed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let missing_template =
        json!({"template_id": uuid::Uuid::now_v7(), "recipient": crate::helpers::address()});
    let first = app
        .keyed(Method::POST, "/v1/orders", "missing", &missing_template)
        .await;
    first.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "template-not-found");
    assert_replay_of(
        &app.keyed(Method::POST, "/v1/orders", "missing", &missing_template)
            .await,
        &first,
    );

    let unknown = format!("/v1/orders/{}", uuid::Uuid::now_v7());
    let first = app
        .keyed(Method::PATCH, &unknown, "gone", &json!({"sender": null}))
        .await;
    first.assert_problem(StatusCode::NOT_FOUND, "not-found");
    assert_replay_of(
        &app.keyed(Method::PATCH, &unknown, "gone", &json!({"sender": null}))
            .await,
        &first,
    );

    let order = app.create_order().await;
    let path = order_path(order.id());
    app.delete(&path).await.assert_status(StatusCode::OK);
    let first = app
        .keyed(Method::PATCH, &path, "late", &json!({"sender": null}))
        .await;
    first.assert_problem(StatusCode::CONFLICT, "order-not-modifiable");
    assert_replay_of(
        &app.keyed(Method::PATCH, &path, "late", &json!({"sender": null}))
            .await,
        &first,
    );
    assert_eq!(count(&app.pool, "idempotency_keys").await, 3);
}

#[sqlx::test]
async fn a_rejected_request_is_not_stored_and_the_corrected_retry_runs(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let mut invalid = order_for(&template);
    invalid["recipient"]["country"] = json!("Netherlands");
    app.keyed(Method::POST, "/v1/orders", "fix-me", &invalid)
        .await
        .assert_invalid_fields();
    let malformed = send(
        app.request(Method::POST, "/v1/orders")
            .header("idempotency-key", "fix-me")
            .header("content-type", "application/json")
            .body("{"),
    )
    .await;
    malformed.assert_problem(StatusCode::BAD_REQUEST, "malformed-json");
    let not_json = send(
        app.request(Method::POST, "/v1/orders")
            .header("idempotency-key", "fix-me")
            .body("x"),
    )
    .await;
    not_json.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    let unauthenticated = send(
        app.client
            .post(app.url("/v1/orders"))
            .header("idempotency-key", "fix-me")
            .json(&order_for(&template)),
    )
    .await;
    unauthenticated.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let bad_path = app
        .keyed(Method::PATCH, "/v1/orders/nope", "fix-me", &json!({}))
        .await;
    bad_path.assert_problem(StatusCode::NOT_FOUND, "not-found");
    assert_eq!(count(&app.pool, "idempotency_keys").await, 0);

    let corrected = app
        .keyed(Method::POST, "/v1/orders", "fix-me", &order_for(&template))
        .await;
    corrected.assert_status(StatusCode::CREATED);
    assert_eq!(count(&app.pool, "orders").await, 1);
}

#[sqlx::test]
async fn a_500_is_stored_and_replayed_after_the_fault_is_gone(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    // One statement at a time: Citus sends the text of a statement that changes a distributed table to the workers,
    // which take one statement only. Citus allows triggers on distributed tables with enable_unsafe_triggers; plain
    // PostgreSQL keeps the setting as an unused custom one.
    let mut conn = app.pool.acquire().await.unwrap();
    for statement in [
        "SET citus.enable_unsafe_triggers = on",
        "CREATE FUNCTION fail_order() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$",
        "CREATE TRIGGER fail_order BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION fail_order()",
    ] {
        sqlx::raw_sql(statement).execute(&mut *conn).await.unwrap();
    }
    drop(conn);
    let first = app
        .keyed(Method::POST, "/v1/orders", "doomed", &order_for(&template))
        .await;
    let problem = first.assert_problem(StatusCode::INTERNAL_SERVER_ERROR, "internal-error");
    assert!(
        !problem["detail"].as_str().unwrap().contains("disk on fire"),
        "no internals leak"
    );
    // On a connection of its own with the setting again: Citus refuses the DROP on a session without it, and the
    // connection that set it may be any of the pool's by now.
    let mut conn = app.pool.acquire().await.unwrap();
    for statement in [
        "SET citus.enable_unsafe_triggers = on",
        "DROP TRIGGER fail_order ON orders",
    ] {
        sqlx::raw_sql(statement).execute(&mut *conn).await.unwrap();
    }
    drop(conn);

    let retry = app
        .keyed(Method::POST, "/v1/orders", "doomed", &order_for(&template))
        .await;
    assert_replay_of(&retry, &first);
    assert_eq!(count(&app.pool, "orders").await, 0);
    let fresh = app
        .keyed(Method::POST, "/v1/orders", "fresh", &order_for(&template))
        .await;
    fresh.assert_status(StatusCode::CREATED);
}

/// At UTC midnight the database's check of a send date can disagree with the service's own: the order was taken
/// (by another server's clock) a day ahead of this server's today. The CHECK constraint's 422 judges the request's
/// content, so it is not stored, and the corrected request runs with the same key.
#[sqlx::test]
async fn a_check_violation_inside_the_endpoint_is_not_stored(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    // The new instant is computed here: Citus refuses `created_at + interval` (a STABLE function of a column) in
    // an UPDATE of a distributed table.
    let taken_at: time::OffsetDateTime =
        sqlx::query_scalar("SELECT created_at FROM orders WHERE account_id = $1 AND id = $2::uuid")
            .bind(app.account_id)
            .bind(order.id())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    sqlx::query("UPDATE orders SET created_at = $3 WHERE account_id = $1 AND id = $2::uuid")
        .bind(app.account_id)
        .bind(order.id())
        .bind(taken_at + time::Duration::days(1))
        .execute(&app.pool)
        .await
        .unwrap();
    let path = order_path(order.id());
    let today = time::OffsetDateTime::now_utc().date();
    let rejected = app
        .keyed(
            Method::PATCH,
            &path,
            "midnight",
            &json!({"send_date": today.to_string()}),
        )
        .await;
    assert_eq!(rejected.assert_invalid_fields(), ["send_date"]);
    assert_eq!(keys_of(&app.pool, "midnight").await, 0);

    let later = (today + time::Duration::days(2)).to_string();
    let corrected = app
        .keyed(
            Method::PATCH,
            &path,
            "midnight",
            &json!({"send_date": later}),
        )
        .await;
    corrected.assert_status(StatusCode::OK);
    assert_eq!(corrected.json()["send_date"], later);
    assert_eq!(keys_of(&app.pool, "midnight").await, 1);
}

// 7. Concurrency

#[sqlx::test]
async fn fifty_concurrent_requests_with_one_key_create_one_order(pool: PgPool) {
    let app = Arc::new(TestApp::spawn(pool).await);
    let template = app.create_template("<p>Hi</p>").await;
    let body = order_for(&template);
    let responses = join_all((0..50).map(|_| {
        let app = Arc::clone(&app);
        let body = body.clone();
        async move { app.keyed(Method::POST, "/v1/orders", "storm", &body).await }
    }))
    .await;
    let originals: Vec<_> = responses
        .iter()
        .filter(|r| r.header("idempotent-replayed").is_none())
        .collect();
    assert_eq!(originals.len(), 1, "exactly one request ran");
    for response in &responses {
        assert_eq!(response.status, StatusCode::CREATED);
        assert_eq!(response.body, originals[0].body);
    }
    assert_eq!(count(&app.pool, "orders").await, 1);
}

#[sqlx::test]
async fn a_retried_template_patch_bumps_the_version_once(pool: PgPool) {
    let app = Arc::new(TestApp::spawn(pool).await);
    let template = app.create_template("<p>Hi</p>").await;
    let path = template_path(template.id());
    let body = json!({"content": "<p>Hello {{name}}</p>"});
    let responses = join_all((0..20).map(|_| {
        let (app, path, body) = (Arc::clone(&app), path.clone(), body.clone());
        async move { app.keyed(Method::PATCH, &path, "v2", &body).await }
    }))
    .await;
    let later = app.keyed(Method::PATCH, &path, "v2", &body).await;
    for response in responses.iter().chain([&later]) {
        response.assert_status(StatusCode::OK);
        assert_eq!(response.json()["version"], 2);
    }
    assert_eq!(app.get(&path).await.json()["version"], 2);
}

#[sqlx::test]
async fn duplicates_on_several_servers_run_once(options: PgPoolOptions, connect: PgConnectOptions) {
    let pool = options
        .max_connections(20)
        .connect_with(connect)
        .await
        .unwrap();
    let first = TestApp::spawn(pool.clone()).await;
    let second = first.second_server(pool.clone(), |_| {}).await;
    let template = first.create_template("<p>Hi</p>").await;
    let servers = Arc::new([first, second]);
    for round in 0..5 {
        let key = format!("spread-{round}");
        let responses = join_all((0..10).map(|i| {
            let (servers, key, body) = (Arc::clone(&servers), key.clone(), order_for(&template));
            async move {
                servers[i % 2]
                    .keyed(Method::POST, "/v1/orders", &key, &body)
                    .await
            }
        }))
        .await;
        let bodies: Vec<_> = responses
            .iter()
            .map(|r| (r.status, r.body.clone()))
            .collect();
        assert!(
            bodies.iter().all(|b| *b == bodies[0]),
            "every duplicate got the same answer"
        );
        assert_eq!(bodies[0].0, StatusCode::CREATED);
    }
    assert_eq!(count(&pool, "orders").await, 5);
}

#[sqlx::test]
async fn a_duplicate_that_waits_too_long_gets_409_and_nothing_is_stored_for_it(pool: PgPool) {
    let app = Arc::new(
        TestApp::spawn_with(pool, |config| {
            config.idempotency.wait_timeout = Duration::from_millis(300)
        })
        .await,
    );
    let template = app.create_template("<p>Hi</p>").await;
    let lock = app.hold_orders_for(&template).await;
    let slow = tokio::spawn({
        let (app, body) = (Arc::clone(&app), order_for(&template));
        async move { app.keyed(Method::POST, "/v1/orders", "slow", &body).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let impatient = app
        .keyed(Method::POST, "/v1/orders", "slow", &order_for(&template))
        .await;
    impatient.assert_problem(StatusCode::CONFLICT, "idempotency-key-in-use");
    assert_eq!(impatient.header("retry-after"), Some("1"));

    lock.rollback().await.unwrap();
    let first = slow.await.unwrap();
    first.assert_status(StatusCode::CREATED);
    assert_replay_of(
        &app.keyed(Method::POST, "/v1/orders", "slow", &order_for(&template))
            .await,
        &first,
    );
    assert_eq!(count(&app.pool, "orders").await, 1);
}

#[sqlx::test]
async fn a_waiter_runs_the_request_when_the_first_rolled_back_without_an_outcome(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = options
        .connect_with(connect.options([("lock_timeout", "400ms")]))
        .await
        .unwrap();
    let app = Arc::new(TestApp::spawn(pool).await);
    let template = app.create_template("<p>Hi</p>").await;
    let lock = app.hold_orders_for(&template).await;
    let first = tokio::spawn({
        let (app, body) = (Arc::clone(&app), order_for(&template));
        async move {
            app.keyed(Method::POST, "/v1/orders", "retry-me", &body)
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiter = tokio::spawn({
        let (app, body) = (Arc::clone(&app), order_for(&template));
        async move {
            app.keyed(Method::POST, "/v1/orders", "retry-me", &body)
                .await
        }
    });
    let first = first.await.unwrap();
    first.assert_problem(StatusCode::CONFLICT, "resource-busy");
    lock.rollback().await.unwrap();
    let waiter = waiter.await.unwrap();
    waiter.assert_status(StatusCode::CREATED);
    assert_eq!(
        waiter.header("idempotent-replayed"),
        None,
        "the waiter ran it itself"
    );
    assert_eq!(count(&app.pool, "orders").await, 1);
}

#[sqlx::test]
async fn a_storm_on_one_key_does_not_starve_other_keys(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = options
        .max_connections(4)
        .connect_with(connect)
        .await
        .unwrap();
    let app = Arc::new(TestApp::spawn(pool.clone()).await);
    let template = app.create_template("<p>Hi</p>").await;
    let other_template = app.create_template("<p>Other</p>").await;
    let lock = app.hold_orders_for(&template).await;
    let storm: Vec<_> = (0..100)
        .map(|_| {
            let (app, body) = (Arc::clone(&app), order_for(&template));
            tokio::spawn(async move { app.keyed(Method::POST, "/v1/orders", "hot", &body).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let unrelated = tokio::time::timeout(
        Duration::from_secs(5),
        app.keyed(
            Method::POST,
            "/v1/orders",
            "cold",
            &order_for(&other_template),
        ),
    )
    .await
    .expect("a request for another key is not starved");
    unrelated.assert_status(StatusCode::CREATED);
    lock.rollback().await.unwrap();
    let answers = join_all(storm).await;
    assert!(
        answers
            .iter()
            .all(|r| r.as_ref().unwrap().status == StatusCode::CREATED)
    );
    assert_eq!(count(&pool, "orders").await, 2);
}

// 8. Retention

#[sqlx::test]
async fn an_expired_key_runs_as_new_and_is_taken_over(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let first = app
        .keyed(Method::POST, "/v1/orders", "daily", &order_for(&template))
        .await;
    first.assert_status(StatusCode::CREATED);
    expire_key(&app.pool, "daily").await;
    let mut other_body = order_for(&template);
    other_body["recipient"]["name"] = json!("Someone else");
    let second = app
        .keyed(Method::POST, "/v1/orders", "daily", &other_body)
        .await;
    second.assert_status(StatusCode::CREATED);
    assert_eq!(second.header("idempotent-replayed"), None);
    assert_ne!(second.json()["id"], first.json()["id"]);
    let age: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM now() - created_at)::float8 FROM idempotency_keys WHERE key = 'daily'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(age < 60.0, "the row was taken over: {age}s old");
    assert_replay_of(
        &app.keyed(Method::POST, "/v1/orders", "daily", &other_body)
            .await,
        &second,
    );
    assert_eq!(count(&app.pool, "orders").await, 2);
}

#[sqlx::test]
async fn retention_follows_the_configured_ttl(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |config| {
        config.idempotency.key_ttl = Duration::from_secs(3600)
    })
    .await;
    let template = app.create_template("<p>Hi</p>").await;
    app.keyed(Method::POST, "/v1/orders", "hourly", &order_for(&template))
        .await
        .assert_status(StatusCode::CREATED);
    // Ages are set from now(): Citus does not run `created_at - interval` (a stable function of a column) on shards.
    sqlx::query(
        "UPDATE idempotency_keys SET created_at = now() - interval '59 minutes', \
         expires_at = now() + interval '1 minute'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let replay = app
        .keyed(Method::POST, "/v1/orders", "hourly", &order_for(&template))
        .await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    sqlx::query(
        "UPDATE idempotency_keys SET created_at = now() - interval '61 minutes', \
         expires_at = now() - interval '1 minute'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let rerun = app
        .keyed(Method::POST, "/v1/orders", "hourly", &order_for(&template))
        .await;
    assert_eq!(rerun.header("idempotent-replayed"), None);
    assert_eq!(count(&app.pool, "orders").await, 2);
}

/// A key keeps the expiry it was stored with: a server (or a sweep) with a shorter TTL neither takes it over nor
/// deletes it, and its own setting applies to the keys it stores.
#[sqlx::test]
async fn a_key_keeps_the_expiry_it_was_stored_with(pool: PgPool) {
    let daily = TestApp::spawn(pool.clone()).await;
    let template = daily.create_template("<p>Hi</p>").await;
    let body = order_for(&template);
    let first = daily.keyed(Method::POST, "/v1/orders", "kept", &body).await;
    first.assert_status(StatusCode::CREATED);
    let brief = daily
        .second_server(pool.clone(), |config| {
            config.idempotency.key_ttl = Duration::from_secs(1)
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    assert_replay_of(
        &brief.keyed(Method::POST, "/v1/orders", "kept", &body).await,
        &first,
    );
    assert_eq!(
        sweep(&pool).await,
        Sweep::Done {
            deleted: 0,
            batches: 1
        }
    );
    brief
        .keyed(Method::POST, "/v1/orders", "brief", &body)
        .await
        .assert_status(StatusCode::CREATED);
    let lives: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - created_at)::float8 FROM idempotency_keys WHERE key = $1",
    )
    .bind("brief")
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(lives, 1.0, "a new key lives as long as its server says");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        sweep(&pool).await,
        Sweep::Done {
            deleted: 1,
            batches: 1
        }
    );
    assert_eq!(keys_of(&pool, "kept").await, 1);
    assert_eq!(count(&pool, "orders").await, 2);
}

// 9. The sweeper

/// Inserts `n` key rows for the account, `age` old, stored for 24 hours.
async fn insert_keys(pool: &PgPool, account_id: uuid::Uuid, prefix: &str, n: i32, age: &str) {
    sqlx::query(
        "INSERT INTO idempotency_keys (account_id, key, fingerprint, created_at, expires_at, response_status, response_body)
         SELECT $1, $2 || i, sha256(i::text::bytea), now() - $4::interval, now() - $4::interval + interval '24 hours',
                201, '{}'::bytea
         FROM generate_series(1, $3) AS i",
    )
    .bind(account_id)
    .bind(prefix)
    .bind(n)
    .bind(age)
    .execute(pool)
    .await
    .unwrap();
}

/// One sweeper pass in batches of 100.
async fn sweep(pool: &PgPool) -> Sweep {
    sweeper::sweep_once(pool, 100, &CancellationToken::new())
        .await
        .unwrap()
}

/// Waits up to 5 seconds for the sweeper task to empty the table.
async fn until_swept(pool: &PgPool, failure: &str) {
    let started = std::time::Instant::now();
    while count(pool, "idempotency_keys").await > 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "{failure}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test]
async fn the_sweeper_deletes_only_expired_keys_in_batches(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    insert_keys(&pool, app.account_id, "old-", 250, "25 hours").await;
    insert_keys(&pool, app.account_id, "edge-", 5, "23 hours 59 minutes").await;
    insert_keys(&pool, app.account_id, "new-", 50, "1 minute").await;
    let first = sweep(&pool).await;
    assert_eq!(
        first,
        Sweep::Done {
            deleted: 250,
            batches: 3
        }
    );
    let left: Vec<String> =
        sqlx::query_scalar("SELECT key FROM idempotency_keys WHERE key LIKE 'old-%'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(left.is_empty());
    assert_eq!(count(&pool, "idempotency_keys").await, 55);
    let again = sweep(&pool).await;
    assert_eq!(
        again,
        Sweep::Done {
            deleted: 0,
            batches: 1
        }
    );
}

#[sqlx::test]
async fn a_key_being_taken_over_is_waited_for_and_not_swept(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    insert_keys(&pool, app.account_id, "old-", 3, "2 days").await;
    // A request takes over the expired key old-1 and has not committed yet.
    let mut takeover = pool.begin().await.unwrap();
    let response = StoredResponse {
        status: 201,
        headers: Vec::new(),
        body: b"{}".to_vec(),
    };
    let stored = idempotency_keys::insert(
        &mut takeover,
        app.account_id,
        "old-1",
        idempotency_keys::RequestLine {
            method: "POST",
            path: "/v1/orders",
        },
        &[7; 32],
        &response,
        Duration::from_secs(86_400),
    )
    .await
    .unwrap();
    assert!(stored, "the expired row is taken over");
    let sweeping = tokio::spawn({
        let pool = pool.clone();
        async move { sweep(&pool).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sweeping.is_finished(), "the sweeper waits for the row");
    takeover.commit().await.unwrap();
    assert_eq!(
        sweeping.await.unwrap(),
        Sweep::Done {
            deleted: 2,
            batches: 1
        }
    );
    let left: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT key, fingerprint FROM idempotency_keys")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        left,
        [("old-1".to_owned(), vec![7; 32])],
        "the taken-over row stays"
    );
}

#[sqlx::test]
async fn only_one_sweeper_runs_at_a_time(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    insert_keys(&pool, app.account_id, "old-", 10, "2 days").await;
    let mut holder = pool.acquire().await.unwrap();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(order_intake::db::idempotency_keys::SWEEPER_LOCK)
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    assert!(locked);
    let skipped = sweep(&pool).await;
    assert_eq!(skipped, Sweep::Skipped);
    assert_eq!(count(&pool, "idempotency_keys").await, 10);
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(order_intake::db::idempotency_keys::SWEEPER_LOCK)
        .execute(&mut *holder)
        .await
        .unwrap();
    let swept = sweep(&pool).await;
    assert_eq!(
        swept,
        Sweep::Done {
            deleted: 10,
            batches: 1
        }
    );
}

#[sqlx::test]
async fn the_sweeper_task_sweeps_on_its_interval_and_stops_on_cancel(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    insert_keys(&pool, app.account_id, "old-", 20, "2 days").await;
    let stop = CancellationToken::new();
    let task = sweeper::spawn(
        pool.clone(),
        Duration::from_millis(100),
        stop.clone(),
        Metrics::new(&pool),
    );
    until_swept(&pool, "the sweeper did not sweep").await;
    insert_keys(&pool, app.account_id, "later-", 3, "2 days").await;
    until_swept(&pool, "the sweeper did not sweep again").await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops promptly")
        .unwrap();
}

#[sqlx::test]
async fn the_sweeper_survives_database_errors(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    insert_keys(&pool, app.account_id, "old-", 5, "2 days").await;
    sqlx::raw_sql("ALTER TABLE idempotency_keys RENAME TO idempotency_keys_away")
        .execute(&pool)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let task = sweeper::spawn(
        pool.clone(),
        Duration::from_millis(100),
        stop.clone(),
        Metrics::new(&pool),
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(!task.is_finished(), "an error does not end the sweeper");
    sqlx::raw_sql("ALTER TABLE idempotency_keys_away RENAME TO idempotency_keys")
        .execute(&pool)
        .await
        .unwrap();
    until_swept(&pool, "the sweeper did not recover").await;
    stop.cancel();
    task.await.unwrap();
}
