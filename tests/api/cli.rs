//! The command line: accounts, migrations (shared with sqlx-cli), configuration errors and graceful shutdown.

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, send};

const BIN: &str = env!("CARGO_BIN_EXE_order-intake");

/// The URL of the test's own database.
fn database_url(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().expect("a database name")
    )
}

fn order_intake(url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", url)
        .env("LOG_FORMAT", "json")
        .output()
        .expect("order-intake runs")
}

#[sqlx::test]
async fn accounts_create_prints_the_account_and_a_working_key(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = database_url(&connect);
    let output = order_intake(&url, &["accounts", "create", "--name", "Acme Print"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON object on one line: {stdout}"
    );
    let account: Value = serde_json::from_str(&stdout).unwrap();
    let object = account.as_object().unwrap();
    assert_eq!(object.keys().collect::<Vec<_>>(), ["id", "name", "api_key"]);
    assert_eq!(account["name"], "Acme Print");
    let key = account["api_key"].as_str().unwrap();
    assert!(key.len() >= 4 + 32, "at least 128 bits of entropy: {key}");

    let pool = options.connect_with(connect).await.unwrap();
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        [order_intake::auth::hash(key).to_vec()],
        "only the hash is stored"
    );

    let app = TestApp::spawn(pool).await;
    let response = send(app.client.get(app.url("/v1/orders")).bearer_auth(key)).await;
    response.assert_status(StatusCode::OK);
}

#[sqlx::test]
async fn accounts_create_rejects_a_bad_name(_options: PgPoolOptions, connect: PgConnectOptions) {
    let output = order_intake(
        &database_url(&connect),
        &["accounts", "create", "--name", ""],
    );
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--name"));
}

#[sqlx::test(migrations = false)]
async fn the_binary_and_sqlx_cli_apply_the_same_migrations_in_either_order(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = database_url(&connect);
    let sqlx = |args: &[&str]| {
        Command::new("sqlx")
            .args(args)
            .args([
                "--source",
                concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
            ])
            .env("DATABASE_URL", &url)
            .output()
            .expect("sqlx-cli is installed (make sqlx-cli)")
    };
    let first = order_intake(&url, &["migrate"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let then_cli = sqlx(&["migrate", "run"]);
    assert!(
        then_cli.status.success(),
        "{}",
        String::from_utf8_lossy(&then_cli.stderr)
    );
    let info = sqlx(&["migrate", "info"]);
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(!info.contains("pending"), "{info}");
    let again = order_intake(&url, &["migrate"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let pool = options.connect_with(connect).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied, order_intake::db::MIGRATOR.iter().count() as i64);
}

#[sqlx::test(migrations = false)]
async fn sqlx_cli_first_then_the_binary(_options: PgPoolOptions, connect: PgConnectOptions) {
    let url = database_url(&connect);
    let cli = Command::new("sqlx")
        .args([
            "migrate",
            "run",
            "--source",
            concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
        ])
        .env("DATABASE_URL", &url)
        .output()
        .expect("sqlx-cli is installed (make sqlx-cli)");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let binary = order_intake(&url, &["migrate"]);
    assert!(
        binary.status.success(),
        "{}",
        String::from_utf8_lossy(&binary.stderr)
    );
}

#[test]
fn invalid_configuration_stops_with_one_clear_line() {
    let cases = [
        ("LISTEN_ADDR", "not-an-address"),
        ("DATABASE_MAX_CONNECTIONS", "0"),
        ("REQUEST_BODY_LIMIT_BYTES", "lots"),
        ("RUN_MIGRATIONS", "maybe"),
        ("LOG_FORMAT", "xml"),
        ("CORS_ALLOWED_ORIGINS", "https://app.example.com/"),
    ];
    for (name, value) in cases {
        let output = Command::new(BIN)
            .arg("serve")
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
            .env(name, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{name}={value} was accepted");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(name) && stderr.contains("invalid configuration"),
            "{stderr}"
        );
    }
    let output = Command::new(BIN)
        .arg("serve")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL is not set"));
}

#[sqlx::test]
async fn sigterm_stops_the_server_cleanly(_options: PgPoolOptions, connect: PgConnectOptions) {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut server = Command::new(BIN)
        .arg("serve")
        .env("DATABASE_URL", database_url(&connect))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
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
}

#[test]
fn the_default_command_is_serve() {
    // With no subcommand it reads the server's configuration, so a bad address stops it the same way.
    let output = Command::new(BIN)
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("LISTEN_ADDR", "bad")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("LISTEN_ADDR"));
}

#[sqlx::test]
async fn sweep_prints_how_many_keys_it_deleted(options: PgPoolOptions, connect: PgConnectOptions) {
    let url = database_url(&connect);
    let pool = options.connect_with(connect).await.unwrap();
    let (account_id, _) = crate::helpers::create_account(&pool, "Sweeper").await;
    sqlx::query(
        "INSERT INTO idempotency_keys (account_id, key, fingerprint, created_at, response_status, response_body)
         SELECT $1, 'k' || i, sha256(i::text::bytea), now() - interval '25 hours' * (i % 2), 201, ''::bytea
         FROM generate_series(1, 7) AS i",
    )
    .bind(account_id)
    .execute(&pool)
    .await
    .unwrap();
    let output = order_intake(&url, &["sweep"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "4\n");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 3);
}
