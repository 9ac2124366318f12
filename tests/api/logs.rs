//! Logs: no idempotency key in them, however it was made, and request ids of bounded size.

use std::{
    io::Read,
    process::{Child, Command, Stdio},
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

/// A server process on a free port with the test's database and these log settings, whose stderr is kept.
struct LoggingServer {
    process: Child,
    base: String,
    log: std::thread::JoinHandle<std::io::Result<String>>,
}

impl LoggingServer {
    async fn start(connect: &PgConnectOptions, logging: &[(&str, &str)]) -> Self {
        let url = database_url(connect);
        let port = free_port();
        let mut process = Command::new(BIN)
            .arg("serve")
            .env("DATABASE_URL", &url)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env_remove("RUST_LOG")
            .envs(logging.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read stderr all along, so that a full pipe never stalls the server.
        let mut stderr = process.stderr.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut log = String::new();
            stderr.read_to_string(&mut log).map(|_| log)
        });
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        while client.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "no server");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { process, base, log }
    }

    /// Stops the server with SIGTERM and gives back all it logged.
    async fn stop(mut self) -> String {
        let kill = Command::new("kill")
            .args(["-TERM", &self.process.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = tokio::task::spawn_blocking(move || self.process.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "exit status {status}");
        self.log.join().unwrap().unwrap()
    }
}

#[sqlx::test]
async fn the_servers_debug_log_holds_a_digest_of_the_key_never_the_key(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = options.connect_with(connect.clone()).await.unwrap();
    let (_, api_key) = create_account(&pool, "Logs").await;
    let server =
        LoggingServer::start(&connect, &[("RUST_LOG", "debug"), ("LOG_FORMAT", "json")]).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
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
    let log = server.stop().await;

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
async fn at_the_default_level_a_keyed_response_line_carries_the_key_digest_and_the_outcome(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = options.connect_with(connect.clone()).await.unwrap();
    let (_, api_key) = create_account(&pool, "Logs").await;
    let server = LoggingServer::start(&connect, &[("LOG_FORMAT", "pretty")]).await;
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client
            .post(format!("{}/v1/templates", server.base))
            .bearer_auth(&api_key)
            .json(&body)
    };
    let template = json!({"name": "Welcome", "format": "postcard_a6", "content": "<p>Hi</p>"});
    let other = json!({"name": "Other", "format": "postcard_a6", "content": "<p>Hi</p>"});
    for (body, status) in [
        (&template, StatusCode::CREATED),
        (&template, StatusCode::CREATED),
        (&other, StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let keyed = post(body.clone()).header("idempotency-key", CUSTOMER_KEY);
        send(keyed).await.assert_status(status);
    }
    send(post(template))
        .await
        .assert_status(StatusCode::CREATED);
    let log = server.stop().await;

    // The README's recipe, as written there, on the log as a file.
    let file = std::env::temp_dir().join(format!("order-intake-{}.log", uuid::Uuid::now_v7()));
    std::fs::write(&file, &log).unwrap();
    let recipe = format!(
        "grep \"key_digest=$(printf %s '{CUSTOMER_KEY}' | sha256sum | cut -c1-12)\" {}",
        file.display()
    );
    let found = Command::new("bash").args(["-c", &recipe]).output().unwrap();
    std::fs::remove_file(&file).unwrap();
    let found = String::from_utf8(found.stdout).unwrap();
    let lines: Vec<&str> = found.lines().collect();
    assert_eq!(lines.len(), 3, "the three keyed responses:\n{log}");
    for (line, (outcome, status)) in
        lines
            .iter()
            .zip([("executed", 201), ("replayed", 201), ("mismatched", 422)])
    {
        assert!(line.contains("finished processing request"), "{line}");
        assert!(line.contains(&format!("idempotency={outcome}")), "{line}");
        assert!(line.contains(&format!("status={status}")), "{line}");
    }
    let responses = log
        .lines()
        .filter(|line| line.contains("finished processing request") && line.contains("POST"));
    assert_eq!(
        responses.count(),
        4,
        "the unkeyed one too, without a digest:\n{log}"
    );
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
