//! PostgreSQL stops and starts again under a keyed load while the server stays up.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use sqlx::PgPool;

use crate::{
    client::{Answer, Client, order},
    consistency::assert_exactly_once,
    process::{Server, create_account, free_addr, migrate},
};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/postgres");
const REQUEST_TIMEOUT_SECONDS: u64 = 5;

/// A PostgreSQL cluster of this test's own, started and stopped with `.ci/postgres`.
struct Cluster {
    url: String,
    data_dir: PathBuf,
}

impl Cluster {
    fn new() -> Self {
        let port = free_addr().port();
        let cluster = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/restart_check"),
            data_dir: std::env::temp_dir()
                .join(format!("order-intake-restart-{}", std::process::id())),
        };
        cluster.run("up");
        cluster
    }

    fn run(&self, command: &str) {
        let output = Command::new(SCRIPT)
            .arg(command)
            .env("DATABASE_URL", &self.url)
            .env("PG_DATA_DIR", &self.data_dir)
            .output()
            .expect("run .ci/postgres");
        assert!(
            output.status.success(),
            ".ci/postgres {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT)
            .arg("stop")
            .env("DATABASE_URL", &self.url)
            .env("PG_DATA_DIR", &self.data_dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

#[tokio::test]
async fn the_server_answers_503_while_postgres_is_down_and_recovers_by_itself() {
    let cluster = Cluster::new();
    migrate(&cluster.url);
    let account = create_account(&cluster.url, "Restart");
    let timeout = REQUEST_TIMEOUT_SECONDS.to_string();
    let server = Server::start(
        &cluster.url,
        &[
            ("DATABASE_MAX_CONNECTIONS", "8"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "1000"),
            ("REQUEST_TIMEOUT_SECONDS", &timeout),
        ],
    )
    .await;
    let client = Client::new(&account);
    let orders_url = server.url("/v1/orders");
    let template = client.create_template(&server.url(""), "Restart").await;

    // Four clients send keyed orders until told to stop, each keeping every answer it got.
    let running = Arc::new(AtomicBool::new(true));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (client, url, running, template) = (
            client.clone(),
            orders_url.clone(),
            running.clone(),
            template.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut n = 0;
            while running.load(Ordering::SeqCst) {
                let key = format!("restart-{worker}-{n}");
                let body = order(&template, worker * 100_000 + n);
                let started = Instant::now();
                let answer = client
                    .send(Method::POST, url.clone(), Some(&key), Some(&body))
                    .await;
                sent.push((key, body, started.elapsed(), answer.ok()));
                n += 1;
            }
            sent
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    cluster.run("stop");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let ready = reqwest::get(server.url("/readyz"))
        .await
        .expect("an answer");
    assert_eq!(
        ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "/readyz while the database is down"
    );
    let down = client
        .send(
            Method::POST,
            orders_url.clone(),
            Some("while-down"),
            Some(&order(&template, 0)),
        )
        .await
        .expect("an answer while the database is down");
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE, "{down:?}");
    assert_eq!(
        down.content_type.as_deref(),
        Some("application/problem+json")
    );
    assert!(
        started.elapsed() < Duration::from_secs(REQUEST_TIMEOUT_SECONDS),
        "503s come before the request timeout, not after: {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    cluster.run("up");
    let back = Instant::now();
    let first_201 = loop {
        let answer = client
            .send(
                Method::POST,
                orders_url.clone(),
                Some("after-restart"),
                Some(&order(&template, 1)),
            )
            .await
            .expect("an answer");
        if answer.status == StatusCode::CREATED {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "not serving 5 s after the database returned: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ready = reqwest::get(server.url("/readyz"))
        .await
        .expect("an answer");
    assert_eq!(ready.status(), StatusCode::OK);
    running.store(false, Ordering::SeqCst);

    let mut acknowledged: HashMap<String, Answer> = HashMap::new();
    let mut to_retry = Vec::new();
    let mut unavailable = 0;
    for worker in workers {
        for (key, body, took, answer) in worker.await.expect("worker") {
            assert!(
                took < Duration::from_secs(REQUEST_TIMEOUT_SECONDS + 1),
                "{key}: no request hangs past the request timeout ({took:?})"
            );
            match answer {
                Some(answer) if answer.status == StatusCode::CREATED => {
                    acknowledged.insert(key, answer);
                }
                Some(answer) => {
                    assert_eq!(
                        answer.status,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "{key}: {answer:?}"
                    );
                    assert_eq!(
                        answer.content_type.as_deref(),
                        Some("application/problem+json")
                    );
                    unavailable += 1;
                    to_retry.push((key, body));
                }
                None => to_retry.push((key, body)),
            }
        }
    }
    assert!(unavailable > 0, "the load saw the outage");
    // What was refused (or cut off) is retried with its key: it runs once now, or replays if it had committed.
    for (key, body) in to_retry {
        let answer = client
            .send(Method::POST, orders_url.clone(), Some(&key), Some(&body))
            .await
            .expect("an answer");
        assert_eq!(answer.status, StatusCode::CREATED, "{key}: {answer:?}");
        acknowledged.insert(key, answer);
    }
    for key in ["while-down", "after-restart"] {
        let n = usize::from(key == "after-restart");
        let answer = client
            .send(
                Method::POST,
                orders_url.clone(),
                Some(key),
                Some(&order(&template, n)),
            )
            .await
            .expect("an answer");
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{key}: the 503 was not stored: {answer:?}"
        );
        acknowledged.insert(key.to_owned(), answer);
    }

    let pool = PgPool::connect(&cluster.url).await.expect("connect");
    assert_exactly_once(&pool, account.id, &acknowledged).await;
    let metrics = server.metrics().await;
    assert!(
        metrics.value(
            "http_requests_total",
            &[("route", "/v1/orders"), ("status", "503")]
        ) >= unavailable as f64
    );
    pool.close().await;
    println!(
        "serving again {first_201:?} after the database returned; {unavailable} requests got a 503 meanwhile"
    );
}
