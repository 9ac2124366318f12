//! Logs: no idempotency key in them, however it was made, and request ids of bounded size.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use order_intake::idempotency::key::IdempotencyKey;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{
    helpers::{BIN, TestApp, create_account, database_url, free_port, send},
    idempotency_keys::encoded,
};

/// A key made of customer data, as clients are told they may make them.
const CUSTOMER_KEY: &str = "Anna de Vries, Keizersgracht 123A, 1015 CJ Amsterdam";

#[sqlx::test]
async fn the_servers_debug_log_holds_a_digest_of_the_key_never_the_key(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = database_url(&connect);
    let pool = options.connect_with(connect).await.unwrap();
    let (_, api_key) = create_account(&pool, "Logs").await;
    let port = free_port();
    let mut server = Command::new(BIN)
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "debug")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr all along, so that a full pipe never stalls the server.
    let mut stderr = server.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        stderr.read_to_string(&mut log).map(|_| log)
    });

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "no server");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let keyed = |body: serde_json::Value| {
        client
            .post(format!("{base}/v1/templates"))
            .bearer_auth(&api_key)
            .header("idempotency-key", CUSTOMER_KEY)
            .json(&body)
    };
    let template = json!({"name": "Welcome", "format": "postcard_a6", "content": "<p>Hi</p>"});
    send(keyed(template.clone()))
        .await
        .assert_status(StatusCode::CREATED);
    let replay = send(keyed(template)).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let other = json!({"name": "Other", "format": "postcard_a6", "content": "<p>Hi</p>"});
    send(keyed(other))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    for key in [CUSTOMER_KEY, "Anna de Vries, unknown"] {
        let inspect = format!("{base}/v1/idempotency_keys/{}", encoded(key));
        send(client.get(inspect).bearer_auth(&api_key)).await;
    }

    let kill = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let log = log.join().unwrap().unwrap();

    let digest = IdempotencyKey::parse(CUSTOMER_KEY.as_bytes())
        .unwrap()
        .digest();
    assert!(
        log.contains("replaying the stored response"),
        "the log is at debug: {log}"
    );
    assert!(log.contains(&digest), "the key's digest correlates: {log}");
    for secret in [CUSTOMER_KEY, "Anna de Vries", "Keizersgracht", "1015 CJ"] {
        assert!(!log.contains(secret), "{secret:?} is in the log: {log}");
    }
}

#[sqlx::test]
async fn a_request_id_is_kept_only_when_short_and_visible_ascii(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let with_id = |id: &[u8]| {
        app.request(Method::GET, "/v1/templates").header(
            "x-request-id",
            reqwest::header::HeaderValue::from_bytes(id).unwrap(),
        )
    };
    let longest = "r".repeat(200);
    let response = send(with_id(longest.as_bytes())).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.header("x-request-id"), Some(longest.as_str()));

    let too_long = "r".repeat(201);
    let not_visible: &[&[u8]] = &[too_long.as_bytes(), b"two words", "Zo\u{eb}".as_bytes()];
    for id in not_visible {
        let response = send(with_id(id)).await;
        response.assert_status(StatusCode::OK);
        let new_id = response.headers["x-request-id"].to_str().unwrap();
        assert!(
            uuid::Uuid::parse_str(new_id).is_ok(),
            "a new id instead of {:?}: {new_id}",
            String::from_utf8_lossy(id)
        );
    }
}
