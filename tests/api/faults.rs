//! Passing database faults, provoked for real: a request they stop stores nothing, and its retry runs.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use order_intake::{
    config::DatabaseConfig,
    db::{self, Sessions},
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{
    Object, TestApp, TestResponse, address, count, database_url, database_url_via, eventually,
    hold_versions, keys_of, lock_waits, order_for, order_path, send, template_path,
};

/// Waits until some session of this database other than the caller's waits for a lock.
async fn wait_for_a_lock_wait(pool: &PgPool) {
    eventually(Duration::from_secs(10), || async move {
        match lock_waits(pool).await {
            0 => Err("no request waits for a lock yet".to_owned()),
            _ => Ok(()),
        }
    })
    .await;
}

#[track_caller]
fn assert_retry_later(response: &TestResponse, status: StatusCode, slug: &str) {
    response.assert_problem(status, slug);
    assert_eq!(response.header("retry-after"), Some("1"));
}

/// A real deadlock: the request (an order PATCH that re-pins another version) locks the order and waits for that
/// version, which another transaction holds while it waits for the order. The database rolls the request back (its deadlock check runs first), which is a passing
/// conflict: 409 `resource-busy`, nothing stored, and the retry with the same key runs.
#[sqlx::test]
async fn a_deadlock_is_not_stored_and_the_retry_runs(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let template = app.create_template("<p>Hello {{name}}</p>").await;
    let created = app
        .post(
            "/v1/orders",
            &json!({"template_id": template["id"], "recipient": address(), "merge_variables": {"name": "Anna"}}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    let order = created.json();
    let template_path = template_path(template.id());
    app.patch(&template_path, &json!({"content": "<p>Hi {{name}}</p>"}))
        .await
        .assert_status(StatusCode::OK);
    let path = order_path(order.id());
    // A re-pin makes the order's foreign key check lock version 2 `FOR KEY SHARE`.
    let change = json!({"template_version": 2, "merge_variables": {"name": "Bea"}});

    let mut other = pool.begin().await.unwrap();
    // The other transaction checks for deadlocks much later than the request (1 s), so the request is the victim.
    sqlx::query("SET LOCAL deadlock_timeout = '60s'")
        .execute(&mut *other)
        .await
        .unwrap();
    hold_versions(&mut other, app.account_id, &template).await;
    let patch = tokio::spawn(send(
        app.request(Method::PATCH, &path)
            .header("idempotency-key", "deadlock")
            .json(&change),
    ));
    wait_for_a_lock_wait(&pool).await;
    let (account_id, order_id) = (app.account_id, order.uuid());
    let closing = tokio::spawn(async move {
        sqlx::query("SELECT 1 FROM orders WHERE account_id = $1 AND id = $2 FOR UPDATE")
            .bind(account_id)
            .bind(order_id)
            .execute(&mut *other)
            .await
            .unwrap();
        other
    });

    let response = patch.await.unwrap();
    assert_retry_later(&response, StatusCode::CONFLICT, "resource-busy");
    assert_eq!(keys_of(&pool, "deadlock").await, 0, "nothing is stored");
    closing.await.unwrap().rollback().await.unwrap();

    let retry = app.keyed(Method::PATCH, &path, "deadlock", &change).await;
    retry.assert_status(StatusCode::OK);
    assert_eq!(retry.header("idempotent-replayed"), None, "the retry ran");
    assert_eq!(retry.json()["merge_variables"]["name"], "Bea");
    assert_eq!(retry.json()["template_version"], 2);
    assert_eq!(keys_of(&pool, "deadlock").await, 1);
}

/// A statement timeout an operator set on the database (here shorter than the lock timeout) strikes while the
/// request waits for a row another session holds: 503 with `Retry-After`, nothing stored, and the retry runs.
#[sqlx::test]
async fn a_statement_timeout_set_on_the_database_is_not_stored(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let setup = options.connect_with(connect.clone()).await.unwrap();
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&setup)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"ALTER DATABASE "{database}" SET statement_timeout = '500ms'"#
    )))
    .execute(&setup)
    .await
    .unwrap();
    // Sessions opened from now on have the timeout.
    let pool = PgPoolOptions::new().connect_with(connect).await.unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let template = app.create_template("<p>Hello</p>").await;
    let body = order_for(&template);

    let mut holder = setup.begin().await.unwrap();
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *holder)
        .await
        .unwrap();
    hold_versions(&mut holder, app.account_id, &template).await;
    let timed_out = app
        .keyed(Method::POST, "/v1/orders", "timed-out", &body)
        .await;
    assert_retry_later(
        &timed_out,
        StatusCode::SERVICE_UNAVAILABLE,
        "service-unavailable",
    );
    assert_eq!(keys_of(&pool, "timed-out").await, 0, "nothing is stored");
    assert_eq!(count(&pool, "orders").await, 0);
    holder.rollback().await.unwrap();

    let retry = app
        .keyed(Method::POST, "/v1/orders", "timed-out", &body)
        .await;
    retry.assert_status(StatusCode::CREATED);
    assert_eq!(retry.header("idempotent-replayed"), None, "the retry ran");
    assert_eq!(count(&pool, "orders").await, 1);
}

/// The service's own request pool (`db::pool`), with `configure` applied to the defaults.
fn request_pool(url: String, configure: impl FnOnce(&mut DatabaseConfig)) -> PgPool {
    let mut config = DatabaseConfig::new(url);
    configure(&mut config);
    db::pool(
        &config,
        Sessions::Requests {
            lock_timeout: Duration::from_secs(10),
        },
    )
    .unwrap()
}

/// `DATABASE_STATEMENT_TIMEOUT_MS` bounds a statement that waits for a row another session holds, even when the
/// lock timeout is longer: 503, nothing stored.
#[sqlx::test]
async fn the_statement_timeout_setting_bounds_every_statement(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let setup = options.connect_with(connect.clone()).await.unwrap();
    let url = database_url(&connect);
    let pool = request_pool(url, |config| {
        config.statement_timeout = Duration::from_millis(300)
    });
    let app = TestApp::spawn(pool.clone()).await;
    let template = app.create_template("<p>Hello</p>").await;
    let mut holder = setup.begin().await.unwrap();
    hold_versions(&mut holder, app.account_id, &template).await;
    let started = std::time::Instant::now();
    let timed_out = app
        .keyed(Method::POST, "/v1/orders", "bounded", &order_for(&template))
        .await;
    assert_retry_later(
        &timed_out,
        StatusCode::SERVICE_UNAVAILABLE,
        "service-unavailable",
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(keys_of(&setup, "bounded").await, 0);
    holder.rollback().await.unwrap();
}

/// A TCP proxy to the database that can stop relaying in both directions while keeping its connections open
/// (what a broken network or a hung peer looks like to each side), or cut a connection right after the next
/// message the service sends (a connection lost before the database's answer comes back).
struct Proxy {
    port: u16,
    paused: Arc<AtomicBool>,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn to(upstream: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let paused = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicBool::new(false));
        let (relaying, cutting) = (Arc::clone(&paused), Arc::clone(&cut));
        let task = tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(upstream.clone()).await.unwrap();
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let closed = CancellationToken::new();
                pipes.spawn(relay(
                    client_read,
                    server_write,
                    Arc::clone(&relaying),
                    Some(Arc::clone(&cutting)),
                    closed.clone(),
                ));
                pipes.spawn(relay(
                    server_read,
                    client_write,
                    Arc::clone(&relaying),
                    None,
                    closed,
                ));
            }
        });
        Self {
            port,
            paused,
            cut,
            task,
        }
    }

    /// The service's request pool to the test's database through this proxy, with `configure` applied.
    fn request_pool(
        &self,
        connect: &PgConnectOptions,
        configure: impl FnOnce(&mut DatabaseConfig),
    ) -> PgPool {
        request_pool(database_url_via(connect, "127.0.0.1", self.port), configure)
    }

    fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Closes the connection that next carries a message from the service, once that message is delivered.
    fn cut_after_next_message(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Closes every connection through the proxy.
    async fn close(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Copies bytes one way, holding them while `paused`; after delivering a chunk while `cut` is set, closes the
/// connection in both directions.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    paused: Arc<AtomicBool>,
    cut: Option<Arc<AtomicBool>>,
    closed: CancellationToken,
) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            () = closed.cancelled() => return,
        };
        let Ok(read) = read else {
            return;
        };
        if read == 0 {
            return;
        }
        while paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
        if cut
            .as_ref()
            .is_some_and(|cut| cut.swap(false, Ordering::SeqCst))
        {
            closed.cancel();
            return;
        }
    }
}

/// Inserts an uncommitted row of `key`, so that a request with it waits just before it writes its own.
async fn hold_key(
    pool: &PgPool,
    account_id: Uuid,
    key: &str,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut holder = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO idempotency_keys (account_id, key, fingerprint, expires_at, response_status, response_body)
         VALUES ($1, $2, sha256('other'), now() + interval '1 day', 201, ''::bytea)",
    )
    .bind(account_id)
    .bind(key)
    .execute(&mut *holder)
    .await
    .unwrap();
    holder
}

/// The connection breaks right after the request sent its COMMIT: the database may have committed, and the
/// service cannot know. It answers 504 `outcome-unknown`, not "nothing was written", and stores nothing; the retry
/// with the same key learns the outcome, and there is one order either way.
#[sqlx::test]
async fn a_commit_whose_answer_is_lost_is_an_unknown_outcome(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let direct = options.connect_with(connect.clone()).await.unwrap();
    let proxy = Proxy::to((connect.get_host().to_owned(), connect.get_port())).await;
    let cut = TestApp::spawn(proxy.request_pool(&connect, |_| {})).await;
    let template = cut.create_template("<p>Hello</p>").await;
    let body = order_for(&template);
    let holder = hold_key(&direct, cut.account_id, "lost").await;
    let request = tokio::spawn(send(
        cut.request(Method::POST, "/v1/orders")
            .header("idempotency-key", "lost")
            .json(&body),
    ));
    wait_for_a_lock_wait(&direct).await;
    // The request's next message is its COMMIT; the connection breaks as soon as it is delivered.
    proxy.cut_after_next_message();
    holder.rollback().await.unwrap();

    let answer = request.await.unwrap();
    assert_retry_later(&answer, StatusCode::GATEWAY_TIMEOUT, "outcome-unknown");
    let retry = cut.keyed(Method::POST, "/v1/orders", "lost", &body).await;
    retry.assert_status(StatusCode::CREATED);
    assert_eq!(
        count(&direct, "orders").await,
        1,
        "one order, whichever way it went"
    );
    assert_eq!(keys_of(&direct, "lost").await, 1);
    proxy.close().await;
}

/// An order without a key is one statement outside any transaction, which commits as it ends: when the connection
/// breaks right after the service sent it, the order may exist, and the service says so (504 `outcome-unknown`)
/// rather than the 503 that tells a client nothing was written and a retry is safe.
#[sqlx::test]
async fn an_unkeyed_order_whose_answer_is_lost_is_an_unknown_outcome(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let direct = options.connect_with(connect.clone()).await.unwrap();
    let proxy = Proxy::to((connect.get_host().to_owned(), connect.get_port())).await;
    // One connection, so that the order's statement is prepared on it by the first order and the second order's
    // next message is the statement itself.
    let cut =
        TestApp::spawn(proxy.request_pool(&connect, |config| config.max_connections = 1)).await;
    let template = cut.create_template("<p>Hello</p>").await;
    let body = order_for(&template);
    cut.post("/v1/orders", &body)
        .await
        .assert_status(StatusCode::CREATED);

    proxy.cut_after_next_message();
    let answer = cut.post("/v1/orders", &body).await;
    assert_retry_later(&answer, StatusCode::GATEWAY_TIMEOUT, "outcome-unknown");
    let orders = count(&direct, "orders").await;
    assert!((1..=2).contains(&orders), "{orders} orders");
    proxy.close().await;
}

/// The connection of a request stops answering in the middle of its transaction, right after it wrote its key
/// row. The database ends that session after `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS` and rolls it back, so its
/// key is free: another server runs the retry at once, instead of waiting on the key row until the kernel notices
/// the dead connection hours later. The stalled request, once its connection breaks, stores nothing.
#[sqlx::test]
async fn a_connection_that_stops_answering_releases_its_key(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let direct = options.connect_with(connect.clone()).await.unwrap();
    let proxy = Proxy::to((connect.get_host().to_owned(), connect.get_port())).await;
    let stalling = proxy.request_pool(&connect, |config| {
        config.idle_in_transaction_timeout = Duration::from_millis(1000)
    });
    let stalled = TestApp::spawn(stalling).await;
    let other = stalled.second_server(direct.clone(), |_| {}).await;
    let template = stalled.create_template("<p>Hello</p>").await;
    let body = order_for(&template);

    let holder = hold_key(&direct, stalled.account_id, "stalled").await;
    let request = tokio::spawn(send(
        stalled
            .request(Method::POST, "/v1/orders")
            .header("idempotency-key", "stalled")
            .json(&body),
    ));
    wait_for_a_lock_wait(&direct).await;
    let backend: i32 = sqlx::query_scalar(
        // The request's own session: on Citus the lock wait itself is on a worker, behind this coordinator session.
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' \
         AND query LIKE 'INSERT INTO idempotency_keys%'",
    )
    .fetch_one(&direct)
    .await
    .unwrap();
    // The network goes quiet; the request then writes its key row, and the answer never arrives.
    proxy.pause();
    holder.rollback().await.unwrap();

    let direct_ref = &direct;
    eventually(Duration::from_secs(5), || async move {
        let alive: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
            .bind(backend)
            .fetch_one(direct_ref)
            .await
            .unwrap();
        match alive {
            0 => Ok(()),
            _ => Err("the stalled session still holds its transaction".to_owned()),
        }
    })
    .await;
    let retry = tokio::time::timeout(
        Duration::from_secs(5),
        other.keyed(Method::POST, "/v1/orders", "stalled", &body),
    )
    .await
    .expect("the key is free");
    retry.assert_status(StatusCode::CREATED);
    assert_eq!(retry.header("idempotent-replayed"), None);

    proxy.close().await;
    let stalled_answer = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("the stalled request ends once its connection breaks")
        .unwrap();
    assert!(
        stalled_answer.status.is_server_error(),
        "{:?}",
        stalled_answer.status
    );
    assert_eq!(
        count(&direct, "orders").await,
        1,
        "one order, from the retry"
    );
    let replay = other
        .keyed(Method::POST, "/v1/orders", "stalled", &body)
        .await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, retry.body);
}
