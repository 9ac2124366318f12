//! kill -9 in the middle of a keyed load, a restart, and clients that retry what went unanswered.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use sqlx::PgPool;
use tokio::sync::Semaphore;

use crate::{
    client::{Answer, Client, order},
    consistency::assert_exactly_once,
    process::{Server, create_account, database_url},
};

const REQUESTS: usize = 300;
const CONCURRENCY: usize = 16;

#[sqlx::test]
async fn every_key_has_one_order_after_a_sigkill_and_retries(pool: PgPool) {
    let url = database_url(&pool);
    let mut server = Server::start(&url, &[("DATABASE_MAX_CONNECTIONS", "8")]).await;
    let account = create_account(&url, "Killed");
    let client = Client::new(&account);
    let orders_url = server.url("/v1/orders");
    let template = client.create_template(&server.url(""), "Killed").await;

    // The load: every request has its own key; the server dies once a third of them were answered.
    let answered = Arc::new(AtomicUsize::new(0));
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut load = Vec::new();
    for n in 0..REQUESTS {
        let (client, url, answered, slots) = (
            client.clone(),
            orders_url.clone(),
            answered.clone(),
            slots.clone(),
        );
        let body = order(&template, n);
        load.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore");
            let key = format!("load-{n}");
            let answer = client
                .send(Method::POST, url, Some(&key), Some(&body))
                .await
                .ok();
            if answer.is_some() {
                answered.fetch_add(1, Ordering::SeqCst);
            }
            (key, body, answer)
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < REQUESTS / 3 {
        assert!(Instant::now() < deadline, "the load did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();

    let mut acknowledged: HashMap<String, Answer> = HashMap::new();
    let mut unanswered = Vec::new();
    for task in load {
        match task.await.expect("load task") {
            (key, _, Some(answer)) if answer.status == StatusCode::CREATED => {
                acknowledged.insert(key, answer);
            }
            (key, body, _) => unanswered.push((key, body)),
        }
    }
    assert!(!unanswered.is_empty(), "the kill cut some requests off");
    assert!(
        acknowledged.len() >= REQUESTS / 3,
        "{} acknowledged",
        acknowledged.len()
    );

    server.restart().await;
    // A client retries what it got no answer for, with the same key, until it gets one.
    let mut recovered = 0;
    for (key, body) in &unanswered {
        let deadline = Instant::now() + Duration::from_secs(20);
        let answer = loop {
            match client
                .send(Method::POST, orders_url.clone(), Some(key), Some(body))
                .await
            {
                Ok(answer) if answer.status == StatusCode::CREATED => break answer,
                other => {
                    assert!(
                        Instant::now() < deadline,
                        "{key}: no 201 on retry: {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        // A request that committed before the kill comes back as a replay; the rest run now, once.
        recovered += usize::from(answer.replayed);
        acknowledged.insert(key.clone(), answer);
    }
    // Requests that were answered before the kill replay the same answer after it.
    for (key, first) in acknowledged.iter().take(20) {
        let n: usize = key.trim_start_matches("load-").parse().expect("key number");
        let again = client
            .send(
                Method::POST,
                orders_url.clone(),
                Some(key),
                Some(&order(&template, n)),
            )
            .await
            .expect("an answer");
        assert!(again.replayed, "{key}");
        assert_eq!(again.outcome(), first.outcome(), "{key}");
    }

    assert_eq!(acknowledged.len(), REQUESTS);
    assert_exactly_once(&pool, account.id, &acknowledged).await;
    println!(
        "killed with {} of {REQUESTS} unanswered; {recovered} of those had committed and were replayed",
        unanswered.len()
    );
}
