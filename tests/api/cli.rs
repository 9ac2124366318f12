//! The command line: accounts, migrations (shared with sqlx-cli), configuration errors and graceful shutdown.

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{BIN, Object, TestApp, database_url, free_port, send};

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
        [order_intake::http::auth::hash(key).to_vec()],
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
    let port = free_port();
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
        "INSERT INTO idempotency_keys (account_id, key, fingerprint, created_at, expires_at, response_status, response_body)
         SELECT $1, 'k' || i, sha256(i::text::bytea), now() - interval '25 hours' * (i % 2),
                now() - interval '25 hours' * (i % 2) + interval '24 hours', 201, ''::bytea
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

/// Migrations wait for the locks they need as long as it takes, whatever lock or statement timeout the database
/// (or the service's request sessions) would impose: a second instance starting during a long migration waits.
#[sqlx::test]
async fn migrations_wait_for_locks_whatever_the_timeouts(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = database_url(&connect);
    let pool = options.connect_with(connect).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        r#"ALTER DATABASE "{0}" SET lock_timeout = '100ms'; ALTER DATABASE "{0}" SET statement_timeout = '100ms'"#,
        url.rsplit('/').next().unwrap()
    )))
    .execute(&pool)
    .await
    .unwrap();
    // A long migration of another instance, as far as this one can tell.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let migrating = tokio::spawn(async move {
        order_intake::db::migrate(&order_intake::config::DatabaseConfig::new(url)).await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!migrating.is_finished(), "it waits rather than failing");
    holder.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), migrating)
        .await
        .expect("it finishes once the lock is free")
        .unwrap()
        .expect("migrations applied");
}

/// Past `SHUTDOWN_TIMEOUT_SECONDS`, a request still running is abandoned: the process exits with an error, and
/// the database rolls back what it did, so its key is free for the retry.
#[sqlx::test]
async fn past_the_shutdown_timeout_in_flight_work_is_abandoned(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = database_url(&connect);
    let pool = options.connect_with(connect).await.unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let template = app.create_template("<p>Hello</p>").await;
    let body =
        serde_json::json!({"template_id": template["id"], "recipient": crate::helpers::address()});
    let port = free_port();
    let mut server = Command::new(BIN)
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("SHUTDOWN_TIMEOUT_SECONDS", "1")
        .env("REQUEST_TIMEOUT_SECONDS", "60")
        .env("IDEMPOTENCY_WAIT_TIMEOUT_MS", "60000")
        .env("DATABASE_STATEMENT_TIMEOUT_MS", "60000")
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
    let mut holder = pool.begin().await.unwrap();
    crate::helpers::hold_versions(&mut holder, app.account_id, &template).await;
    let request = tokio::spawn(
        client
            .post(format!("http://127.0.0.1:{port}/v1/orders"))
            .bearer_auth(&app.api_key)
            .header("idempotency-key", "abandoned")
            .json(&body)
            .send(),
    );
    crate::helpers::eventually(Duration::from_secs(10), || async {
        match crate::helpers::lock_waits(&pool).await {
            0 => Err("the request does not wait yet".to_owned()),
            _ => Ok(()),
        }
    })
    .await;

    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || server.wait()),
    )
    .await
    .expect("the server exits after its shutdown timeout")
    .unwrap()
    .unwrap();
    assert!(!status.success(), "abandoning work is an error: {status}");
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(
        request.await.unwrap().is_err(),
        "the connection closed unanswered"
    );
    holder.rollback().await.unwrap();

    let retry = app
        .keyed(reqwest::Method::POST, "/v1/orders", "abandoned", &body)
        .await;
    retry.assert_status(StatusCode::CREATED);
    assert_eq!(
        retry.header("idempotent-replayed"),
        None,
        "nothing was stored"
    );
    assert_eq!(crate::helpers::count(&pool, "orders").await, 1);
}

/// Runs a command that must succeed, and gives its standard output.
fn succeeds(url: &str, args: &[&str]) -> String {
    let output = order_intake(url, args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs a command that must fail without printing anything on stdout, and gives its standard error.
fn fails(url: &str, args: &[&str]) -> String {
    let output = order_intake(url, args);
    assert!(!output.status.success(), "{args:?} succeeded");
    assert!(output.stdout.is_empty());
    String::from_utf8(output.stderr).unwrap()
}

#[sqlx::test]
async fn api_keys_rotate_without_downtime_and_a_revoked_key_gets_401(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = database_url(&connect);
    let account: Value =
        serde_json::from_str(&succeeds(&url, &["accounts", "create", "--name", "Acme"])).unwrap();
    let account_id = account.id();
    let old_key = account["api_key"].as_str().unwrap();

    let created = succeeds(&url, &["api-keys", "create", "--account", account_id]);
    assert_eq!(created.lines().count(), 1, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    let object = created.as_object().unwrap();
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        ["id", "account_id", "api_key"]
    );
    assert_eq!(created["account_id"], account["id"]);
    let new_key = created["api_key"].as_str().unwrap();
    assert_ne!(new_key, old_key);

    let pool = options.connect_with(connect).await.unwrap();
    // Every request checks its key, so the revocation shows from the next one; how long a server may keep a checked
    // key (API_KEY_CACHE_SECONDS) is tested in `auth`.
    let app = TestApp::spawn_with(pool, |config| {
        config.api_key_cache_ttl = std::time::Duration::ZERO
    })
    .await;
    let get_with = |key: &str| send(app.client.get(app.url("/v1/orders")).bearer_auth(key));
    get_with(old_key).await.assert_status(StatusCode::OK);
    get_with(new_key).await.assert_status(StatusCode::OK);

    let listed = succeeds(&url, &["api-keys", "list", "--account", account_id]);
    let keys: Vec<Value> = listed
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{listed}");
    for (key, secret) in keys.iter().zip([old_key, new_key]) {
        assert_eq!(
            key.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["id", "prefix", "created_at", "last_used_at", "revoked_at"]
        );
        assert_eq!(key["prefix"].as_str().unwrap(), &secret[..12]);
        assert!(key["last_used_at"].is_string(), "used above: {key}");
        assert!(key["revoked_at"].is_null());
        assert!(!listed.contains(&secret[12..]), "no secret in the list");
    }
    assert_eq!(keys[1]["id"], created["id"]);

    let old_id = keys[0].id();
    let revoked: Value =
        serde_json::from_str(&succeeds(&url, &["api-keys", "revoke", old_id])).unwrap();
    assert_eq!(revoked["id"], keys[0]["id"]);
    let revoked_at = revoked["revoked_at"].as_str().unwrap().to_owned();
    let response = get_with(old_key).await;
    response.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    get_with(new_key).await.assert_status(StatusCode::OK);

    let again: Value =
        serde_json::from_str(&succeeds(&url, &["api-keys", "revoke", old_id])).unwrap();
    assert_eq!(
        again["revoked_at"],
        revoked_at.as_str(),
        "the first time stays"
    );
    let listed = succeeds(&url, &["api-keys", "list", "--account", account_id]);
    assert!(listed.contains(&revoked_at), "{listed}");

    let unknown = uuid::Uuid::now_v7().to_string();
    assert!(fails(&url, &["api-keys", "revoke", &unknown]).contains(&unknown));
    assert!(fails(&url, &["api-keys", "create", "--account", &unknown]).contains(&unknown));
    assert!(fails(&url, &["api-keys", "list", "--account", &unknown]).contains(&unknown));
    assert!(fails(&url, &["api-keys", "revoke", "not-a-uuid"]).contains("KEY_ID"));
}

#[sqlx::test]
async fn accounts_list_prints_every_account_oldest_first_without_secrets(
    _options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = database_url(&connect);
    assert_eq!(succeeds(&url, &["accounts", "list"]), "", "no account yet");
    let created: Vec<Value> = ["Acme", "Bakker & Zn"]
        .iter()
        .map(|name| {
            serde_json::from_str(&succeeds(&url, &["accounts", "create", "--name", name])).unwrap()
        })
        .collect();
    let key = succeeds(
        &url,
        &[
            "api-keys",
            "create",
            "--account",
            created[1]["id"].as_str().unwrap(),
        ],
    );
    let key: Value = serde_json::from_str(&key).unwrap();
    succeeds(&url, &["api-keys", "revoke", key["id"].as_str().unwrap()]);

    let listed = succeeds(&url, &["accounts", "list"]);
    let accounts: Vec<Value> = listed
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(accounts.len(), 2, "{listed}");
    for (account, made) in accounts.iter().zip(&created) {
        assert_eq!(
            account.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["id", "name", "created_at", "live_api_keys"]
        );
        assert_eq!(account["id"], made["id"]);
        assert_eq!(account["name"], made["name"]);
        let created_at = account["created_at"].as_str().unwrap();
        time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339)
            .unwrap();
        assert_eq!(account["live_api_keys"], 1, "a revoked key is not live");
        assert!(!listed.contains(made["api_key"].as_str().unwrap()));
    }
}

#[test]
fn api_keys_revoke_help_says_when_a_revoked_key_is_refused() {
    let output = Command::new(BIN)
        .args(["api-keys", "revoke", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("within API_KEY_CACHE_SECONDS"), "{help}");
    assert!(!help.contains("next request"), "{help}");
}
