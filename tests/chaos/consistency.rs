//! What must hold in the database after any fault: one order per key, one key per order, nothing dangling.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use crate::client::Answer;

/// Checks the account's orders against its key rows, and every 201 the client saw against both.
///
/// Every order of the account must have been taken with a key; `acknowledged` maps each key to the 201 its client
/// received (first answer or replay).
pub async fn assert_exactly_once(
    pool: &PgPool,
    account_id: Uuid,
    acknowledged: &HashMap<String, Answer>,
) {
    let dangling: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM idempotency_keys k
         WHERE k.account_id = $1 AND k.response_status = 201
           AND NOT EXISTS (SELECT 1 FROM orders o
                           WHERE o.account_id = k.account_id
                             AND o.id = (convert_from(k.response_body, 'UTF8')::jsonb ->> 'id')::uuid)",
    )
    .bind(account_id)
    .fetch_one(pool)
    .await
    .expect("dangling keys");
    assert_eq!(
        dangling, 0,
        "no key row points at an order that does not exist"
    );

    let keyless: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders o
         WHERE o.account_id = $1
           AND NOT EXISTS (SELECT 1 FROM idempotency_keys k
                           WHERE k.account_id = o.account_id AND k.response_status = 201
                             AND (convert_from(k.response_body, 'UTF8')::jsonb ->> 'id')::uuid = o.id)",
    )
    .bind(account_id)
    .fetch_one(pool)
    .await
    .expect("orders without keys");
    assert_eq!(keyless, 0, "every order taken with a key has its key row");

    let (orders, keys, distinct_orders_of_keys): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM orders WHERE account_id = $1),
                count(*),
                count(DISTINCT convert_from(response_body, 'UTF8')::jsonb ->> 'id')
         FROM idempotency_keys WHERE account_id = $1 AND response_status = 201",
    )
    .bind(account_id)
    .fetch_one(pool)
    .await
    .expect("counts");
    assert_eq!(keys, distinct_orders_of_keys, "no two keys share an order");
    assert_eq!(orders, keys, "one order per key");

    let half_written: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM idempotency_keys
         WHERE account_id = $1 AND (response_status NOT BETWEEN 100 AND 599 OR length(response_body) = 0)",
    )
    .bind(account_id)
    .fetch_one(pool)
    .await
    .expect("half-written keys");
    assert_eq!(half_written, 0, "every key row holds a whole response");

    for (key, answer) in acknowledged {
        assert_eq!(
            answer.status,
            reqwest::StatusCode::CREATED,
            "key {key}: {answer:?}"
        );
        let stored: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT response_body FROM idempotency_keys WHERE account_id = $1 AND key = $2",
        )
        .bind(account_id)
        .bind(key)
        .fetch_optional(pool)
        .await
        .expect("key row");
        assert_eq!(
            stored.as_deref(),
            Some(answer.body.as_slice()),
            "key {key}: the stored answer is the one the client got"
        );
        let id: Uuid = answer.json()["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("order id");
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1 AND account_id = $2)",
        )
        .bind(id)
        .bind(account_id)
        .fetch_one(pool)
        .await
        .expect("order");
        assert!(
            exists,
            "key {key}: the acknowledged order {id} is in the database"
        );
    }
}
