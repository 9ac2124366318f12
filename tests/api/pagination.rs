//! Lists: newest first, pages by `starting_after` without duplicates, without gaps for what committed before the
//! walk, `limit` and `status` checked.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{Object, TestApp, address, order_path};

/// Every id of a list, page by page.
async fn walk(app: &TestApp, path: &str, limit: usize) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            None => format!("{path}{separator}limit={limit}"),
            Some(id) => format!("{path}{separator}limit={limit}&starting_after={id}"),
        };
        let response = app.get(&url).await;
        response.assert_status(StatusCode::OK);
        let page = response.json();
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit);
        pages += 1;
        ids.extend(data.iter().map(|o| o.id().to_owned()));
        if page["has_more"] == json!(false) {
            break;
        }
        assert_eq!(data.len(), limit, "a page before the last is full");
        cursor = ids.last().cloned();
    }
    (ids, pages)
}

#[sqlx::test]
async fn pages_cover_every_order_once_newest_first(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let mut created = Vec::new();
    for _ in 0..23 {
        let order = app
            .post(
                "/v1/orders",
                &json!({"template_id": template["id"], "recipient": address()}),
            )
            .await
            .json();
        created.push(order.id().to_owned());
    }
    let (ids, pages) = walk(&app, "/v1/orders", 5).await;
    assert_eq!(pages, 5);
    created.reverse();
    assert_eq!(ids, created, "newest first, no duplicates, no gaps");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 23);

    let first_page = app.get("/v1/orders").await.json();
    assert_eq!(
        first_page["data"].as_array().unwrap().len(),
        20,
        "the default limit is 20"
    );
    assert_eq!(first_page["has_more"], true);
}

#[sqlx::test]
async fn orders_can_be_filtered_by_status(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut cancelled = Vec::new();
    for i in 0..6 {
        let order = app.create_order().await;
        if i % 2 == 0 {
            let id = order.id();
            app.delete(&order_path(id))
                .await
                .assert_status(StatusCode::OK);
            cancelled.push(id.to_owned());
        }
    }
    let (ids, _) = walk(&app, "/v1/orders?status=cancelled", 2).await;
    cancelled.reverse();
    assert_eq!(ids, cancelled);
    let received = app.get("/v1/orders?status=received").await.json();
    assert!(
        received["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "received")
    );
    assert_eq!(received["data"].as_array().unwrap().len(), 3);
}

#[sqlx::test]
async fn templates_page_the_same_way(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut created = Vec::new();
    for _ in 0..7 {
        created.push(
            app.create_template("<p>Hi</p>").await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (ids, pages) = walk(&app, "/v1/templates", 3).await;
    created.reverse();
    assert_eq!(ids, created);
    assert_eq!(pages, 3);
}

#[sqlx::test]
async fn list_parameters_are_checked(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.get("/v1/orders?limit=100")
        .await
        .assert_status(StatusCode::OK);
    app.get("/v1/orders?limit=1")
        .await
        .assert_status(StatusCode::OK);
    let cases: [(&str, Value); 8] = [
        ("/v1/orders?limit=0", json!(["limit"])),
        ("/v1/orders?limit=101", json!(["limit"])),
        ("/v1/orders?limit=ten", json!(["limit"])),
        ("/v1/orders?starting_after=nope", json!(["starting_after"])),
        ("/v1/orders?status=lost", json!(["status"])),
        ("/v1/orders?limit=1&limit=2", json!(["limit"])),
        ("/v1/orders?lmit=5", json!(["lmit"])),
        ("/v1/templates?status=received", json!(["status"])),
    ];
    for (path, fields) in cases {
        assert_eq!(
            json!(app.get(path).await.assert_invalid_fields()),
            fields,
            "{path}"
        );
    }
}

/// What the README says of lists while writes are in flight, with two interleaved transactions: an order whose id
/// was taken before another's, but whose transaction commits after that one was listed, lands behind a boundary the
/// client already passed. Its transaction was running during the walk; nothing committed before the walk is
/// skipped, and nothing is repeated.
#[sqlx::test]
async fn an_order_committed_during_a_walk_can_land_behind_its_boundary(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let template = app.create_template("<p>Hi</p>").await;
    let body = json!({"template_id": template["id"], "recipient": address()});
    let oldest = app.post("/v1/orders", &body).await.json();

    // The first order takes its id, then waits just before it commits: an uncommitted row holds its key.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO idempotency_keys (account_id, key, fingerprint, expires_at, response_status, response_body)
         VALUES ($1, 'late', sha256('other'), now() + interval '1 day', 201, ''::bytea)",
    )
    .bind(app.account_id)
    .execute(&mut *holder)
    .await
    .unwrap();
    let late = tokio::spawn(crate::helpers::send(
        app.request(reqwest::Method::POST, "/v1/orders")
            .header("idempotency-key", "late")
            .json(&body),
    ));
    crate::helpers::eventually(std::time::Duration::from_secs(10), || async {
        match crate::helpers::lock_waits(&pool).await {
            0 => Err("the first order does not wait yet".to_owned()),
            _ => Ok(()),
        }
    })
    .await;
    // The second order takes a later id and commits first.
    let newest = app.post("/v1/orders", &body).await.json();

    let (walked, _) = walk(&app, "/v1/orders", 1).await;
    assert_eq!(
        walked,
        [&newest["id"], &oldest["id"]].map(|id| id.as_str().unwrap())
    );
    holder.rollback().await.unwrap();
    let late = late.await.unwrap();
    late.assert_status(StatusCode::CREATED);
    let late_id = late.id();
    assert!(late_id.as_str() < newest.id(), "its id was taken first");

    let (again, _) = walk(&app, "/v1/orders", 1).await;
    assert_eq!(
        again,
        [newest.id(), &late_id, oldest.id()],
        "it lands between the two, behind the boundary the first walk passed"
    );
    assert_eq!(
        again.iter().collect::<HashSet<_>>().len(),
        3,
        "nothing repeats"
    );
}
