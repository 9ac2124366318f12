//! Three servers on one database: duplicates spread over all three run once, and one sweeps at a time.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use sqlx::PgPool;

use crate::{
    client::{Answer, Client, order},
    process::{Metrics, Server, create_account, database_url},
};

const KEYS: usize = 30;
const DUPLICATES: usize = 6;

async fn start_three(url: &str) -> Vec<Server> {
    let env = [
        ("DATABASE_MAX_CONNECTIONS", "8"),
        ("IDEMPOTENCY_SWEEP_INTERVAL_SECONDS", "1"),
    ];
    vec![
        Server::start(url, &env).await,
        Server::start(url, &env).await,
        Server::start(url, &env).await,
    ]
}

async fn scrape(servers: &[Server]) -> Vec<Metrics> {
    let mut all = Vec::new();
    for server in servers {
        all.push(server.metrics().await);
    }
    all
}

fn sum(metrics: &[Metrics], name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics.iter().map(|m| m.value(name, labels)).sum()
}

#[sqlx::test]
async fn duplicates_spread_over_three_servers_run_once(pool: PgPool) {
    let url = database_url(&pool);
    let servers = start_three(&url).await;
    let account = create_account(&url, "Instances");
    let client = Client::new(&account);
    let template = client.create_template(&servers[0].url(""), "Shared").await;

    let mut tasks = Vec::new();
    for duplicate in 0..DUPLICATES {
        for k in 0..KEYS {
            let client = client.clone();
            // Duplicate d of key k goes to server (k + d) % 3: every key reaches all three.
            let url = servers[(k + duplicate) % 3].url("/v1/orders");
            let body = order(&template, k);
            tasks.push(tokio::spawn(async move {
                let key = format!("spread-{k}");
                (
                    key.clone(),
                    client
                        .send(Method::POST, url, Some(&key), Some(&body))
                        .await,
                )
            }));
        }
    }
    let mut by_key: HashMap<String, Vec<Answer>> = HashMap::new();
    for task in tasks {
        let (key, answer) = task.await.expect("task");
        by_key
            .entry(key)
            .or_default()
            .push(answer.expect("an answer"));
    }
    let mut acknowledged = HashMap::new();
    for (key, answers) in by_key {
        let first = answers
            .iter()
            .find(|a| !a.replayed)
            .expect("an original")
            .clone();
        assert_eq!(first.status, StatusCode::CREATED, "{key}: {first:?}");
        assert_eq!(
            answers.iter().filter(|a| !a.replayed).count(),
            1,
            "{key}: one original"
        );
        for answer in &answers {
            assert_eq!(
                answer.outcome(),
                first.outcome(),
                "{key}: the same answer from every server"
            );
        }
        acknowledged.insert(key, first);
    }
    crate::consistency::assert_exactly_once(&pool, account.id, &acknowledged).await;

    let metrics = scrape(&servers).await;
    let outcome = |o: &str| sum(&metrics, "idempotency_requests_total", &[("outcome", o)]);
    assert_eq!(
        outcome("executed"),
        KEYS as f64,
        "one run per key across the three servers"
    );
    assert_eq!(outcome("replayed"), (KEYS * (DUPLICATES - 1)) as f64);
}

/// Inserts `n` keys created two days ago, long expired.
async fn insert_expired(pool: &PgPool, account: uuid::Uuid, prefix: &str, n: i64) {
    sqlx::query(
        "INSERT INTO idempotency_keys (account_id, key, fingerprint, created_at, expires_at, response_status, response_body)
         SELECT $1, $2 || i, sha256(i::text::bytea), now() - interval '2 days', now() - interval '1 day', 201,
                convert_to('{}', 'UTF8')
         FROM generate_series(1, $3) AS i",
    )
    .bind(account)
    .bind(prefix)
    .bind(n)
    .execute(pool)
    .await
    .expect("expired keys");
}

/// Scrapes until the servers' deleted-keys counters add up to `expected`: a pass counts itself after its last
/// batch commits, so the rows can be gone a moment before the count moves. Fails on any other sum.
async fn wait_for_deleted(servers: &[Server], expected: f64) -> Vec<Metrics> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = scrape(servers).await;
        let deleted = sum(&metrics, "idempotency_sweeper_deleted_keys_total", &[]);
        if deleted == expected {
            return metrics;
        }
        assert!(
            deleted < expected,
            "{deleted} keys counted as deleted, expected {expected}"
        );
        assert!(
            Instant::now() < deadline,
            "{deleted} keys counted as deleted, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_until_swept(pool: &PgPool, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE expires_at <= now()")
                .fetch_one(pool)
                .await
                .expect("count");
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{left} expired keys still there after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test]
async fn one_server_sweeps_at_a_time_and_another_takes_over_when_it_dies(pool: PgPool) {
    let url = database_url(&pool);
    let account = create_account(&url, "Sweeping");
    let live = "SELECT count(*) FROM idempotency_keys WHERE created_at > now() - interval '1 hour'";
    sqlx::query(
        "INSERT INTO idempotency_keys (account_id, key, fingerprint, expires_at, response_status, response_body)
         VALUES ($1, 'live', sha256('live'), now() + interval '1 day', 201, convert_to('{}', 'UTF8'))",
    )
    .bind(account.id)
    .execute(&pool)
    .await
    .expect("a live key");
    // Enough rows that one pass takes longer than the one-second tick: the others find the lock taken.
    const EXPIRED: i64 = 200_000;
    insert_expired(&pool, account.id, "old-", EXPIRED).await;

    let mut servers = start_three(&url).await;
    wait_until_swept(&pool, Duration::from_secs(60)).await;
    // Every expired key counted once, by whichever server held the lock.
    let metrics = wait_for_deleted(&servers, EXPIRED as f64).await;
    assert!(
        sum(
            &metrics,
            "idempotency_sweeper_runs_total",
            &[("result", "skipped")]
        ) >= 1.0,
        "a server found another one sweeping and skipped its turn"
    );
    let sweeper = metrics
        .iter()
        .position(|m| m.value("idempotency_sweeper_deleted_keys_total", &[]) > 0.0)
        .expect("one server swept");
    let live_left: i64 = sqlx::query_scalar(live).fetch_one(&pool).await.unwrap();
    assert_eq!(live_left, 1, "the sweeper deletes nothing but expired keys");

    // The sweeping server dies without a word; its session lock goes with its connections.
    servers[sweeper].kill();
    let survivors: Vec<Server> = servers
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| (i != sweeper).then_some(s))
        .collect();
    let before = sum(
        &scrape(&survivors).await,
        "idempotency_sweeper_deleted_keys_total",
        &[],
    );
    insert_expired(&pool, account.id, "later-", 5_000).await;
    wait_until_swept(&pool, Duration::from_secs(15)).await;
    wait_for_deleted(&survivors, before + 5_000.0).await;
}
