//! Metrics: `/metrics` serves Prometheus text, and requests, idempotency outcomes and sweeps move its counters.

use std::{sync::Arc, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::helpers::{Object, TestApp, eventually, order_for, order_path, send};
use order_intake::{db::idempotency_keys::SWEEPER_LOCK, idempotency::sweeper, metrics::Metrics};

/// The value of the sample `series` (`name{labels}` exactly as exposed) in a scrape; 0 when it is absent, as a
/// counter that has not moved yet is.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn idempotency(outcome: &str) -> String {
    format!("idempotency_requests_total{{outcome=\"{outcome}\"}}")
}

/// One scrape of the app's `/metrics`, without an API key.
async fn scrape(app: &TestApp) -> String {
    let response = send(app.client.get(app.url("/metrics"))).await;
    response.assert_status(StatusCode::OK);
    String::from_utf8(response.body).expect("UTF-8 text")
}

/// The value of one sample of the app now.
async fn sample_of(app: &TestApp, series: &str) -> f64 {
    sample(&scrape(app).await, series)
}

#[sqlx::test]
async fn metrics_are_prometheus_text_and_need_no_key(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let response = send(app.client.get(app.url("/metrics"))).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(response.body).unwrap();
    assert!(
        text.ends_with('\n'),
        "every line ends with a line feed, the last one too"
    );
    for declared in [
        "# TYPE idempotency_requests_total counter",
        "# TYPE idempotency_sweeper_runs_total counter",
        "# TYPE idempotency_sweeper_deleted_keys_total counter",
        "# TYPE db_pool_connections gauge",
        "# TYPE db_pool_idle_connections gauge",
        "# TYPE db_pool_max_connections gauge",
        "# TYPE db_pool_waiters gauge",
    ] {
        assert!(text.contains(declared), "{declared} in:\n{text}");
    }
    for outcome in [
        "executed",
        "replayed",
        "mismatched",
        "conflicted",
        "expired_retaken",
    ] {
        assert!(
            text.contains(&format!("{} 0\n", idempotency(outcome))),
            "{outcome} starts at 0:\n{text}"
        );
    }
    assert_eq!(
        sample(&text, "db_pool_max_connections"),
        f64::from(app.pool.options().get_max_connections())
    );
    assert!(sample(&text, "db_pool_connections") >= 1.0, "{text}");

    let again = scrape(&app).await;
    for declared in [
        "# TYPE http_requests_total counter",
        "# TYPE http_request_duration_seconds histogram",
    ] {
        assert!(again.contains(declared), "{declared} in:\n{again}");
    }
    assert_eq!(
        sample(
            &again,
            r#"http_requests_total{method="GET",route="/metrics",status="200"}"#
        ),
        1.0,
        "a scrape counts itself, from the next scrape on"
    );
}

#[sqlx::test]
async fn requests_are_counted_by_route_template_and_status(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let created = r#"http_requests_total{method="POST",route="/v1/orders",status="201"}"#;
    let order = app.create_order().await;
    assert_eq!(sample_of(&app, created).await, 1.0);

    let path = order_path(order.id());
    app.get(&path).await.assert_status(StatusCode::OK);
    app.get("/nowhere")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    send(app.request(Method::from_bytes(b"BREW").unwrap(), "/v1/orders")).await;
    let text = scrape(&app).await;
    assert_eq!(sample(&text, created), 1.0);
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="GET",route="/v1/orders/{id}",status="200"}"#
        ),
        1.0,
        "ids do not make a series each"
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        1.0
    );
    assert!(
        text.lines().any(
            |line| line.starts_with(r#"http_requests_total{method="other",route="/v1/orders""#)
        ),
        "unknown methods share one label:\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"http_request_duration_seconds_count{method="POST",route="/v1/orders"}"#
        ),
        1.0
    );
}

#[sqlx::test]
async fn each_idempotency_outcome_is_counted(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let body = order_for(&template);

    app.keyed(Method::POST, "/v1/orders", "k", &body)
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(sample_of(&app, &idempotency("executed")).await, 1.0);

    let replay = app.keyed(Method::POST, "/v1/orders", "k", &body).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(sample_of(&app, &idempotency("replayed")).await, 1.0);

    let other = json!({"template_id": template["id"], "recipient": {"name": "Other"}});
    app.keyed(Method::POST, "/v1/orders", "k", &other)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    assert_eq!(sample_of(&app, &idempotency("mismatched")).await, 1.0);

    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day'")
        .execute(&app.pool)
        .await
        .unwrap();
    let rerun = app.keyed(Method::POST, "/v1/orders", "k", &body).await;
    rerun.assert_status(StatusCode::CREATED);
    assert_eq!(rerun.header("idempotent-replayed"), None);
    let text = scrape(&app).await;
    assert_eq!(sample(&text, &idempotency("expired_retaken")), 1.0);
    assert_eq!(sample(&text, &idempotency("executed")), 2.0);
    assert_eq!(sample(&text, &idempotency("replayed")), 1.0);
    assert_eq!(sample(&text, &idempotency("mismatched")), 1.0);
    assert_eq!(sample(&text, &idempotency("conflicted")), 0.0);
}

#[sqlx::test]
async fn a_duplicate_that_waits_too_long_counts_as_conflicted(pool: PgPool) {
    let app = Arc::new(
        TestApp::spawn_with(pool, |config| {
            config.idempotency.wait_timeout = Duration::from_millis(300)
        })
        .await,
    );
    let template = app.create_template("<p>Hi</p>").await;
    // Orders for a held template wait, so the first request holds its key.
    let lock = app.hold_orders_for(&template).await;
    let slow = tokio::spawn({
        let (app, body) = (Arc::clone(&app), order_for(&template));
        async move { app.keyed(Method::POST, "/v1/orders", "busy", &body).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.keyed(Method::POST, "/v1/orders", "busy", &order_for(&template))
        .await
        .assert_problem(StatusCode::CONFLICT, "idempotency-key-in-use");
    assert_eq!(sample_of(&app, &idempotency("conflicted")).await, 1.0);

    lock.rollback().await.unwrap();
    slow.await.unwrap().assert_status(StatusCode::CREATED);
    assert_eq!(sample_of(&app, &idempotency("executed")).await, 1.0);
}

/// Waits up to 5 seconds for `series` in `metrics` to reach `at_least`.
async fn until(metrics: &Metrics, series: &str, at_least: f64) {
    eventually(Duration::from_secs(5), || async move {
        let text = metrics.encode().unwrap();
        if sample(&text, series) >= at_least {
            Ok(())
        } else {
            Err(format!("{series} did not reach {at_least}:\n{text}"))
        }
    })
    .await;
}

#[sqlx::test]
async fn sweeper_passes_and_deleted_keys_are_counted(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    sqlx::query(
        "INSERT INTO idempotency_keys (account_id, key, fingerprint, created_at, expires_at, response_status, response_body)
         SELECT $1, 'old-' || i, sha256(i::text::bytea), now() - interval '2 days', now() - interval '1 day', 201, '{}'::bytea
         FROM generate_series(1, 7) AS i",
    )
    .bind(app.account_id)
    .execute(&pool)
    .await
    .unwrap();
    let mut holder = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(SWEEPER_LOCK)
        .execute(&mut *holder)
        .await
        .unwrap();

    let metrics = Metrics::new(&pool);
    let stop = CancellationToken::new();
    let task = sweeper::spawn(
        pool.clone(),
        Duration::from_millis(50),
        stop.clone(),
        metrics.clone(),
    );
    until(
        &metrics,
        r#"idempotency_sweeper_runs_total{result="skipped"}"#,
        1.0,
    )
    .await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(SWEEPER_LOCK)
        .execute(&mut *holder)
        .await
        .unwrap();
    until(
        &metrics,
        r#"idempotency_sweeper_runs_total{result="swept"}"#,
        1.0,
    )
    .await;
    let text = metrics.encode().unwrap();
    assert_eq!(sample(&text, "idempotency_sweeper_deleted_keys_total"), 7.0);

    sqlx::raw_sql("ALTER TABLE idempotency_keys RENAME TO idempotency_keys_away")
        .execute(&pool)
        .await
        .unwrap();
    until(
        &metrics,
        r#"idempotency_sweeper_runs_total{result="failed"}"#,
        1.0,
    )
    .await;
    stop.cancel();
    task.await.unwrap();
    sqlx::raw_sql("ALTER TABLE idempotency_keys_away RENAME TO idempotency_keys")
        .execute(&pool)
        .await
        .unwrap();
    let text = metrics.encode().unwrap();
    assert_eq!(sample(&text, "idempotency_sweeper_deleted_keys_total"), 7.0);
    assert_eq!(
        sample_of(&app, "idempotency_sweeper_deleted_keys_total").await,
        0.0,
        "each server counts in its own registry"
    );
}

#[sqlx::test]
async fn requests_waiting_for_a_connection_are_counted_until_they_get_one(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    assert_eq!(sample_of(&app, "db_pool_waiters").await, 0.0);

    // Every connection of the pool taken: the next request waits at authentication.
    let mut held = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        held.push(pool.acquire().await.expect("a connection"));
    }
    let waiting = tokio::spawn(send(app.request(Method::GET, "/v1/orders")));
    let app_ref = &app;
    eventually(Duration::from_secs(5), || async move {
        if sample_of(app_ref, "db_pool_waiters").await >= 1.0 {
            Ok(())
        } else {
            Err("the waiting request was never counted".to_owned())
        }
    })
    .await;
    assert_eq!(sample_of(&app, "db_pool_idle_connections").await, 0.0);

    drop(held);
    waiting
        .await
        .expect("the request")
        .assert_status(StatusCode::OK);
    assert_eq!(
        sample_of(&app, "db_pool_waiters").await,
        0.0,
        "it left the count when it got one"
    );
}

#[sqlx::test]
async fn the_build_and_the_process_are_served(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let text = scrape(&app).await;
    let build = format!(
        "order_intake_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&text, &build), 1.0, "{text}");
    for declared in [
        "# TYPE order_intake_build_info gauge",
        "# TYPE process_cpu_seconds_total counter",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_open_fds gauge",
        "# TYPE process_max_fds gauge",
        "# TYPE process_start_time_seconds gauge",
    ] {
        assert!(text.contains(declared), "{declared} in:\n{text}");
    }
    assert!(sample(&text, "process_cpu_seconds_total") > 0.0, "{text}");
    assert!(
        sample(&text, "process_resident_memory_bytes") > 1_000_000.0,
        "{text}"
    );
    assert!(sample(&text, "process_open_fds") >= 3.0, "{text}");
    let started = sample(&text, "process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(started > now - 3600.0 && started <= now, "{text}");
}

fn batch_rows(outcome: &str) -> String {
    format!("order_batch_rows_total{{outcome=\"{outcome}\"}}")
}

#[sqlx::test]
async fn orders_are_counted_once_they_are_created_and_never_for_a_replay(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let text = scrape(&app).await;
    assert!(text.contains("orders_created_total 0\n"), "{text}");
    for outcome in ["created", "replayed", "failed"] {
        assert!(
            text.contains(&format!("{} 0\n", batch_rows(outcome))),
            "{text}"
        );
    }
    let template = app.create_template("<p>Hi</p>").await;
    let body = order_for(&template);
    app.post("/v1/orders", &body)
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(sample_of(&app, "orders_created_total").await, 1.0);
    for _ in 0..2 {
        app.keyed(Method::POST, "/v1/orders", "k", &body)
            .await
            .assert_status(StatusCode::CREATED);
    }
    assert_eq!(sample_of(&app, "orders_created_total").await, 2.0);
    let unknown = json!({"template_id": uuid::Uuid::now_v7(), "recipient": body["recipient"]});
    app.post("/v1/orders", &unknown)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "template-not-found");
    assert_eq!(sample_of(&app, "orders_created_total").await, 2.0);

    let row = |key: &str| json!({"idempotency_key": key, "recipient": body["recipient"]});
    let batch = json!({"template_id": template["id"],
                       "orders": [row("b1"), row("b2"), row("k"), {"idempotency_key": "b3"}]});
    let response = app.post("/v1/order_batches", &batch).await;
    response.assert_status(StatusCode::CREATED);
    assert_eq!(
        response.json()["counts"],
        json!({"rows": 4, "created": 2, "replayed": 1, "failed": 1})
    );
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "orders_created_total"), 4.0);
    assert_eq!(sample(&text, &batch_rows("created")), 2.0);
    assert_eq!(sample(&text, &batch_rows("replayed")), 1.0);
    assert_eq!(sample(&text, &batch_rows("failed")), 1.0);
}

/// The metric names the expressions of deploy/prometheus/alerts.yml read, without quoted label values.
fn series_the_alert_rules_use() -> Vec<String> {
    let rules = include_str!("../../deploy/prometheus/alerts.yml");
    let mut names = Vec::new();
    let mut in_expr = false;
    for line in rules.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("expr:") {
            in_expr = true;
        } else if trimmed.starts_with("for:") {
            in_expr = false;
        }
        if !in_expr {
            continue;
        }
        let unquoted: String = line.split('"').step_by(2).collect();
        let mut rest = unquoted.as_str();
        while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic()) {
            rest = &rest[start..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let (word, after) = rest.split_at(end);
            // Metric names have an underscore; functions are followed by their arguments.
            if word.contains('_') && !after.starts_with('(') && !names.iter().any(|n| n == word) {
                names.push(word.to_owned());
            }
            rest = after;
        }
    }
    names
}

#[sqlx::test]
async fn every_series_the_alert_rules_use_is_served(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    scrape(&app).await;
    let text = scrape(&app).await;
    let names = series_the_alert_rules_use();
    assert!(names.len() >= 4, "{names:?}");
    for name in names {
        let declared = match name.strip_suffix("_bucket") {
            Some(histogram) => format!("# TYPE {histogram} histogram\n"),
            None => format!("# TYPE {name} "),
        };
        assert!(
            text.contains(&declared),
            "alerts.yml uses {name}, which /metrics does not serve:\n{text}"
        );
    }
}
