//! A running server on a free port, an account with its API key, and requests that read like the contract.

use std::{
    future::Future,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use order_intake::{
    config::{Config, DatabaseConfig},
    db,
    http::auth::ApiKey,
    server,
};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Postgres, Transaction, postgres::PgConnectOptions};
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

/// The service, started as production starts it (`server::build`) on a free port of 127.0.0.1, against the test's
/// database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub pool: PgPool,
    pub client: reqwest::Client,
    /// The API key of the default account.
    pub api_key: String,
    pub account_id: Uuid,
    /// Stops the server when the last handle on it drops, so that it closes its pool before the test's database
    /// is dropped.
    _running: Arc<DropGuard>,
}

impl TestApp {
    pub async fn spawn(pool: PgPool) -> Self {
        Self::spawn_with(pool, |_| {}).await
    }

    /// Spawns with the default configuration changed by `configure`.
    pub async fn spawn_with(pool: PgPool, configure: impl FnOnce(&mut Config)) -> Self {
        let (addr, running) = start(pool.clone(), configure).await;
        let (account_id, api_key) = create_account(&pool, "Test account").await;
        Self {
            addr,
            pool,
            client: reqwest::Client::new(),
            api_key,
            account_id,
            _running: Arc::new(running),
        }
    }

    /// A second server on `pool`, with the default configuration changed by `configure`, acting for this account.
    pub async fn second_server(&self, pool: PgPool, configure: impl FnOnce(&mut Config)) -> Self {
        let (addr, running) = start(pool.clone(), configure).await;
        Self {
            addr,
            pool,
            client: reqwest::Client::new(),
            api_key: self.api_key.clone(),
            account_id: self.account_id,
            _running: Arc::new(running),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request with the default account's key.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.api_key)
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> TestResponse {
        send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> TestResponse {
        send(self.request(Method::PATCH, path).json(body)).await
    }

    /// A POST or PATCH with an `Idempotency-Key`.
    pub async fn keyed(&self, method: Method, path: &str, key: &str, body: &Value) -> TestResponse {
        send(
            self.request(method, path)
                .header("idempotency-key", key)
                .json(body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        send(self.request(Method::DELETE, path)).await
    }

    /// Creates a template and returns it.
    pub async fn create_template(&self, content: &str) -> Value {
        let response = self
            .post(
                "/v1/templates",
                &json!({"name": "Welcome", "format": "postcard_a6", "content": content}),
            )
            .await;
        response.assert_status(StatusCode::CREATED);
        response.json()
    }

    /// Creates an order for a new template without merge fields and returns it.
    pub async fn create_order(&self) -> Value {
        let template = self.create_template("<p>Hello</p>").await;
        let response = self
            .post(
                "/v1/orders",
                &json!({"template_id": template["id"], "recipient": address()}),
            )
            .await;
        response.assert_status(StatusCode::CREATED);
        response.json()
    }

    /// Holds a row lock on the template's versions until the transaction ends, so that an order for the template
    /// waits inside its own transaction: see [`hold_versions`].
    pub async fn hold_orders_for(&self, template: &Value) -> Transaction<'static, Postgres> {
        let mut tx = self.pool.begin().await.expect("begin");
        hold_versions(&mut tx, self.account_id, template).await;
        tx
    }

    /// Another app handle on the same server, acting for a new account.
    pub async fn other_account(&self) -> TestApp {
        let (account_id, api_key) = create_account(&self.pool, "Other account").await;
        TestApp {
            addr: self.addr,
            pool: self.pool.clone(),
            client: self.client.clone(),
            api_key,
            account_id,
            _running: Arc::clone(&self._running),
        }
    }
}

/// Starts a server through `server::build` on `pool`, with the test defaults changed by `configure`, and returns
/// its address once its sweeper made its first pass; dropping the guard stops it.
///
/// The tests' defaults: a free port, and a sweep interval no test outlasts, so that the keys a test expires stay
/// until it sweeps them itself.
pub async fn start(pool: PgPool, configure: impl FnOnce(&mut Config)) -> (SocketAddr, DropGuard) {
    let mut config = Config::new(DatabaseConfig::new("postgres://unused"));
    config.listen_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.idempotency.sweep_interval = Duration::from_secs(3600);
    configure(&mut config);
    let server = server::build(config, pool).await.expect("server started");
    let addr = server.addr();
    let metrics = server.metrics().clone();
    let stop = CancellationToken::new();
    tokio::spawn(server.serve(stop.clone().cancelled_owned()));
    eventually(Duration::from_secs(10), || {
        let text = metrics.encode().expect("metrics");
        async move {
            match sweeper_passes(&text) {
                0.0 => Err("the sweeper has not made its first pass".to_owned()),
                _ => Ok(()),
            }
        }
    })
    .await;
    (addr, stop.drop_guard())
}

/// The passes of the sweeper a scrape counts, whatever their result.
fn sweeper_passes(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("idempotency_sweeper_runs_total{"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

pub async fn create_account(pool: &PgPool, name: &str) -> (Uuid, String) {
    let key = ApiKey::generate().expect("random key");
    let mut conn = pool.acquire().await.expect("connection");
    let id = db::accounts::insert_with_key(&mut conn, name, &key.hash, key.prefix())
        .await
        .expect("account");
    (id, key.secret)
}

/// A valid address.
pub fn address() -> Value {
    json!({
        "name": "Anna de Vries",
        "street": "Keizersgracht",
        "house_number": "123A",
        "postal_code": "1015 CJ",
        "city": "Amsterdam",
        "country": "NL"
    })
}

/// What a test reads of an object the API answered with.
pub trait Object {
    /// Its `id`.
    fn id(&self) -> &str;
    /// Its `id` as a UUID, for SQL.
    fn uuid(&self) -> Uuid;
}

impl Object for Value {
    #[track_caller]
    fn id(&self) -> &str {
        self["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no string id in {self}"))
    }

    #[track_caller]
    fn uuid(&self) -> Uuid {
        self.id().parse().expect("a UUID id")
    }
}

/// The path of the template with this id.
pub fn template_path(id: &str) -> String {
    format!("/v1/templates/{id}")
}

/// The path of the order with this id.
pub fn order_path(id: &str) -> String {
    format!("/v1/orders/{id}")
}

/// A response, read to its end.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

pub async fn send(request: reqwest::RequestBuilder) -> TestResponse {
    let response = request.send().await.expect("request sent");
    TestResponse {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("body read").to_vec(),
    }
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `id` of the object in the body.
    #[track_caller]
    pub fn id(&self) -> String {
        self.json().id().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.body)
        );
    }

    /// Asserts a problem+json response of this status and type slug, and returns the problem.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, slug: &str) -> Value {
        self.assert_status(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let problem = self.json();
        assert_eq!(
            problem["type"],
            format!("/problems/{slug}"),
            "problem: {problem}"
        );
        assert_eq!(problem["status"], status.as_u16());
        assert!(problem["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
        problem
    }

    /// Asserts a 422 validation problem and returns the fields it names.
    #[track_caller]
    pub fn assert_invalid_fields(&self) -> Vec<String> {
        let problem = self.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
        problem["errors"]
            .as_array()
            .expect("errors array")
            .iter()
            .map(|e| {
                assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
                e["field"].as_str().expect("field").to_owned()
            })
            .collect()
    }
}

/// The body of a new order for `template`.
pub fn order_for(template: &Value) -> Value {
    json!({"template_id": template["id"], "recipient": address()})
}

/// Locks the template's versions (`FOR UPDATE`) in the transaction of `conn`, so that an order for the template
/// (or a PATCH re-pinning one) waits inside its own transaction: the foreign key check of its write locks the
/// version row `FOR KEY SHARE`, which `FOR UPDATE` holds off. Taking an order locks nothing else of the template.
///
/// Filtered by account like every statement of the service, so that on Citus it is a single-shard lock.
pub async fn hold_versions(conn: &mut PgConnection, account_id: Uuid, template: &Value) {
    let id = template.uuid();
    let locked = sqlx::query(
        "SELECT 1 FROM template_versions WHERE account_id = $1 AND template_id = $2 FOR UPDATE",
    )
    .bind(account_id)
    .bind(id)
    .execute(conn)
    .await
    .expect("lock the template's versions");
    assert!(locked.rows_affected() >= 1, "the versions are locked");
}

/// How many sessions of this database wait for a lock, on every node: on Citus a request's row locks are taken on
/// the worker that holds its shard, where `citus_stat_activity` (every node's `pg_stat_activity`) sees the wait.
pub async fn lock_waits(pool: &PgPool) -> i64 {
    let citus: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
            .fetch_one(pool)
            .await
            .expect("extensions");
    let view = if citus {
        "citus_stat_activity"
    } else {
        "pg_stat_activity"
    };
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {view} WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )))
    .fetch_one(pool)
    .await
    .expect("lock waits")
}

/// The binary of the service, for tests of the command line and of whole processes.
pub const BIN: &str = env!("CARGO_BIN_EXE_order-intake");

/// The URL of the test's own database.
pub fn database_url(connect: &PgConnectOptions) -> String {
    database_url_via(connect, connect.get_host(), connect.get_port())
}

/// The URL of the test's database through `host` and `port`.
pub fn database_url_via(connect: &PgConnectOptions, host: &str, port: u16) -> String {
    format!(
        "postgres://{}@{host}:{port}/{}",
        connect.get_username(),
        connect.get_database().expect("a database name")
    )
}

/// A port of 127.0.0.1 that was free a moment ago, for a process to listen on.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local address").port()
}

/// Counts the rows stored for an idempotency key, in every account.
pub async fn keys_of(pool: &PgPool, key: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = $1")
        .bind(key)
        .fetch_one(pool)
        .await
        .expect("count keys")
}

/// Makes the key a day older than its 24 hours, so that it is expired and past retention.
///
/// Ages are set from now(): Citus does not run `created_at - interval` (a stable function of a column) on shards.
pub async fn expire_key(pool: &PgPool, key: &str) {
    sqlx::query(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours', \
         expires_at = now() - interval '1 hour' WHERE key = $1",
    )
    .bind(key)
    .execute(pool)
    .await
    .expect("expire the key");
}

/// Counts the rows of a table.
pub async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .expect("count")
}

/// Polls `check` until it gives `Ok`; fails with its last reason once `within` has passed.
pub async fn eventually<F, Fut>(within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(()) => return,
            Err(reason) => assert!(Instant::now() < deadline, "after {within:?}: {reason}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
