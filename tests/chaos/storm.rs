//! A duplicate storm: 20 keys × 10 concurrent duplicates, mixed POST order and PATCH template, on one server.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::{
    client::{Answer, Client, order},
    process::{Server, create_account, database_url},
};

const KEYS: usize = 20;
const DUPLICATES: usize = 10;

#[sqlx::test]
async fn twenty_keys_ten_duplicates_each_run_twenty_operations(pool: PgPool) {
    let url = database_url(&pool);
    let server = Server::start(&url, &[("DATABASE_MAX_CONNECTIONS", "10")]).await;
    let account = create_account(&url, "Storm");
    let client = Client::new(&account);
    let base = server.url("");
    let template_for_orders = client.create_template(&base, "For orders").await;
    let mut patched = Vec::new();
    for n in 0..KEYS / 2 {
        patched.push(client.create_template(&base, &format!("Patched {n}")).await);
    }

    // Even keys create an order, odd keys rename a template; every duplicate of a key is the same request.
    let request = |k: usize| -> (Method, String, Value) {
        if k.is_multiple_of(2) {
            (
                Method::POST,
                format!("{base}/v1/orders"),
                order(&template_for_orders, k),
            )
        } else {
            let id = &patched[k / 2];
            (
                Method::PATCH,
                format!("{base}/v1/templates/{id}"),
                json!({"name": format!("Renamed {k}")}),
            )
        }
    };
    let mut storm = Vec::new();
    for duplicate in 0..DUPLICATES {
        for k in 0..KEYS {
            let (method, url, body) = request(k);
            let client = client.clone();
            storm.push(tokio::spawn(async move {
                let key = format!("storm-{k}");
                let answer = client.send(method, url, Some(&key), Some(&body)).await;
                (k, duplicate, answer.expect("an answer"))
            }));
        }
    }
    // Requests with keys of their own, sent while the storm runs, are not starved of connections.
    let mut bystanders = Vec::new();
    for n in 0..20 {
        let client = client.clone();
        let url = format!("{base}/v1/orders");
        let body = order(&template_for_orders, 1000 + n);
        bystanders.push(tokio::spawn(async move {
            client
                .send(
                    Method::POST,
                    url,
                    Some(&format!("bystander-{n}")),
                    Some(&body),
                )
                .await
        }));
    }

    let mut by_key: HashMap<usize, Vec<Answer>> = HashMap::new();
    for task in storm {
        let (k, _, answer) = task.await.expect("storm task");
        by_key.entry(k).or_default().push(answer);
    }
    for task in bystanders {
        let answer = task.await.expect("bystander task").expect("an answer");
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "a bystander succeeds: {answer:?}"
        );
    }

    for (k, answers) in &by_key {
        assert_eq!(answers.len(), DUPLICATES);
        let first = answers
            .iter()
            .find(|a| !a.replayed)
            .unwrap_or_else(|| panic!("key {k}: no original"));
        let expected = if k.is_multiple_of(2) {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        assert_eq!(first.status, expected, "key {k}: {first:?}");
        assert_eq!(
            answers.iter().filter(|a| !a.replayed).count(),
            1,
            "key {k}: one original"
        );
        for answer in answers {
            assert_eq!(
                answer.outcome(),
                first.outcome(),
                "key {k}: every duplicate gets the original answer"
            );
        }
    }

    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE account_id = $1")
        .bind(account.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        orders,
        (KEYS / 2 + 20) as i64,
        "one order per storm key, plus the bystanders'"
    );
    let versions: Vec<i32> =
        sqlx::query_scalar("SELECT version FROM templates WHERE id = ANY($1::uuid[])")
            .bind(&patched)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        versions,
        vec![2; KEYS / 2],
        "each template was renamed once"
    );

    let metrics = server.metrics().await;
    let outcome = |o: &str| metrics.value("idempotency_requests_total", &[("outcome", o)]);
    assert_eq!(outcome("executed"), (KEYS + 20) as f64, "one run per key");
    assert_eq!(
        outcome("replayed"),
        (KEYS * (DUPLICATES - 1)) as f64,
        "every duplicate replayed"
    );
    assert_eq!(outcome("conflicted"), 0.0);
    assert_eq!(
        metrics.value(
            "http_requests_total",
            &[("route", "/v1/orders"), ("status", "201")]
        ),
        (KEYS / 2 * DUPLICATES + 20) as f64,
    );
}
