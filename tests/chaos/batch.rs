//! kill -9 in the middle of an order batch, a restart, and the same batch sent again with the same key.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    client::{Client, order},
    process::{Server, create_account, database_url},
};

const ROWS: usize = 10_000;

async fn count(pool: &PgPool, sql: &str, account: Uuid) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(account)
        .fetch_one(pool)
        .await
        .expect("count")
}

/// Orders of the account, and those without the key row that stores the answer naming them.
async fn orders_and_orphans(pool: &PgPool, account: Uuid) -> (i64, i64) {
    let orders = count(
        pool,
        "SELECT count(*) FROM orders WHERE account_id = $1",
        account,
    )
    .await;
    let orphans = count(
        pool,
        "SELECT count(*) FROM orders WHERE account_id = $1 AND id NOT IN (
             SELECT (convert_from(response_body, 'UTF8')::jsonb ->> 'id')::uuid FROM idempotency_keys
             WHERE account_id = $1 AND key LIKE 'row-%' AND response_status = 201)",
        account,
    )
    .await;
    (orders, orphans)
}

#[sqlx::test]
async fn a_batch_killed_half_way_completes_when_sent_again(pool: PgPool) {
    let url = database_url(&pool);
    let mut server = Server::start(&url, &[]).await;
    let account = create_account(&url, "Batch killed");
    let client = Client::new(&account);
    let template = client.create_template(&server.url(""), "Batch").await;
    let orders: Vec<Value> = (0..ROWS)
        .map(|n| {
            let mut row = order(&template, n);
            row["idempotency_key"] = json!(format!("row-{n}"));
            row
        })
        .collect();
    let batch = json!({"orders": orders});
    let batches_url = server.url("/v1/order_batches");

    let upload = tokio::spawn({
        let (client, url, batch) = (client.clone(), batches_url.clone(), batch.clone());
        async move {
            client
                .send(Method::POST, url, Some("upload-1"), Some(&batch))
                .await
        }
    });
    // Kill once some chunks have committed, well before the last.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let orders = count(
            &pool,
            "SELECT count(*) FROM orders WHERE account_id = $1",
            account.id,
        )
        .await;
        if orders >= 1000 {
            break;
        }
        assert!(Instant::now() < deadline, "the batch did not get going");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill();
    let unanswered = upload.await.expect("upload task");
    assert!(
        unanswered.is_err(),
        "the killed batch was not answered: {unanswered:?}"
    );

    let (taken, orphans) = orders_and_orphans(&pool, account.id).await;
    assert!(taken < ROWS as i64, "killed before the end: {taken} orders");
    assert_eq!(orphans, 0, "every committed order has its key row");
    let keys = count(
        &pool,
        "SELECT count(*) FROM idempotency_keys WHERE account_id = $1 AND key LIKE 'row-%'",
        account.id,
    )
    .await;
    assert_eq!(keys, taken, "and every key row its order");
    let unfinished = count(
        &pool,
        "SELECT count(*) FROM order_batches WHERE account_id = $1 AND completed_at IS NULL",
        account.id,
    )
    .await;
    assert_eq!(unfinished, 1);

    server.restart().await;
    let answer = client
        .send(
            Method::POST,
            batches_url.clone(),
            Some("upload-1"),
            Some(&batch),
        )
        .await
        .expect("an answer");
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let completed = answer.json();
    let counts = &completed["counts"];
    assert_eq!(counts["rows"], ROWS);
    assert_eq!(
        counts["replayed"], taken,
        "rows taken before the kill come back as replays"
    );
    assert_eq!(counts["created"], ROWS as i64 - taken);
    assert_eq!(counts["failed"], 0);

    let (orders, orphans) = orders_and_orphans(&pool, account.id).await;
    assert_eq!((orders, orphans), (ROWS as i64, 0), "one order per row");
    let batches = count(
        &pool,
        "SELECT count(*) FROM order_batches WHERE account_id = $1 AND completed_at IS NOT NULL",
        account.id,
    )
    .await;
    assert_eq!(
        batches, 1,
        "the unfinished batch was completed, not doubled"
    );
    let again = client
        .send(Method::POST, batches_url, Some("upload-1"), Some(&batch))
        .await
        .expect("an answer");
    assert!(again.replayed);
    assert_eq!(again.outcome(), answer.outcome());
    println!("killed after {taken} of {ROWS} rows; the rest were taken on the second send");
}
