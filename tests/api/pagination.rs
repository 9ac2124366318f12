//! Lists: newest first, pages by `starting_after` and back by `ending_before` without duplicates, without gaps for
//! what committed before the walk, bounds on the time of creation, `limit`, `status` and `template_id` checked.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};

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

/// Every id of a list walked backwards from its end: each page with `ending_before` set to the first id of the page
/// after it, starting before the lowest id there is. The ids come out in the list's order, as a walk forwards.
async fn walk_backwards(app: &TestApp, path: &str, limit: usize) -> Vec<String> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut ids: Vec<String> = Vec::new();
    let mut cursor = uuid::Uuid::nil().to_string();
    loop {
        let url = format!("{path}{separator}limit={limit}&ending_before={cursor}");
        let response = app.get(&url).await;
        response.assert_status(StatusCode::OK);
        let page = response.json();
        let page_ids: Vec<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.id().to_owned())
            .collect();
        let mut sorted = page_ids.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(page_ids, sorted, "a page walked back is newest first too");
        let more = page["has_more"] == json!(true);
        if more {
            assert_eq!(page_ids.len(), limit, "a page before the first is full");
        }
        ids.splice(0..0, page_ids);
        if !more {
            break;
        }
        cursor = ids[0].clone();
    }
    ids
}

/// The millisecond in a UUIDv7 id: its first 48 bits.
fn id_time(id: &str) -> OffsetDateTime {
    let milliseconds = i128::from_str_radix(&id.replace('-', "")[..12], 16).unwrap();
    OffsetDateTime::from_unix_timestamp_nanos(milliseconds * 1_000_000).unwrap()
}

/// A time as a query parameter, at an offset of one hour (its `+` percent-encoded).
fn query_time(time: OffsetDateTime) -> String {
    time.to_offset(UtcOffset::from_hms(1, 0, 0).unwrap())
        .format(&Rfc3339)
        .unwrap()
        .replace('+', "%2B")
}

#[sqlx::test]
async fn walking_back_gives_the_pages_of_walking_forwards_in_reverse(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    for _ in 0..11 {
        app.post(
            "/v1/orders",
            &json!({"template_id": template["id"], "recipient": address()}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    }
    for limit in [1, 3, 4, 11, 20] {
        let (forwards, _) = walk(&app, "/v1/orders", limit).await;
        assert_eq!(forwards.len(), 11);
        assert_eq!(
            walk_backwards(&app, "/v1/orders", limit).await,
            forwards,
            "limit {limit}: no gap, no repeat"
        );
    }

    // From the middle: the page before an order holds the ones just newer than it.
    let (all, _) = walk(&app, "/v1/orders", 100).await;
    let page = app
        .get(&format!("/v1/orders?limit=3&ending_before={}", all[6]))
        .await
        .json();
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.id())
        .collect();
    assert_eq!(ids, all[3..6]);
    assert_eq!(page["has_more"], true, "three more before them");
    let page = app
        .get(&format!("/v1/orders?limit=3&ending_before={}", all[3]))
        .await
        .json();
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    assert_eq!(page["has_more"], false, "none before the newest");
}

#[sqlx::test]
async fn templates_and_versions_walk_back_the_same_way(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut template = Value::Null;
    for _ in 0..5 {
        template = app.create_template("<p>Hi</p>").await;
    }
    let (forwards, _) = walk(&app, "/v1/templates", 2).await;
    assert_eq!(walk_backwards(&app, "/v1/templates", 2).await, forwards);

    for name in ["b", "c", "d"] {
        app.patch(
            &format!("/v1/templates/{}", template.id()),
            &json!({"name": name}),
        )
        .await
        .assert_status(StatusCode::OK);
    }
    let versions = format!("/v1/templates/{}/versions", template.id());
    let page = app
        .get(&format!("{versions}?limit=2&ending_before=2"))
        .await
        .json();
    let numbers: Vec<&Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["version"])
        .collect();
    assert_eq!(numbers, [&json!(4), &json!(3)]);
    assert_eq!(page["has_more"], false);
}

#[sqlx::test]
async fn row_results_walk_back_in_file_order(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let orders: Vec<Value> = (0..7)
        .map(|i| json!({"idempotency_key": format!("row-{i}"), "recipient": address()}))
        .collect();
    let batch = app
        .post(
            "/v1/order_batches",
            &json!({"template_id": template["id"], "orders": orders}),
        )
        .await
        .json();
    let rows = format!("/v1/order_batches/{}/rows", batch.id());
    let all = app.get(&rows).await.json();
    let numbers: Vec<i64> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers.len(), 7);
    let before = |cursor: i64| {
        let (app, rows) = (&app, &rows);
        async move {
            let page = app
                .get(&format!("{rows}?limit=3&ending_before={cursor}"))
                .await
                .json();
            let numbers: Vec<i64> = page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["row"].as_i64().unwrap())
                .collect();
            (numbers, page["has_more"].as_bool().unwrap())
        }
    };
    assert_eq!(before(numbers[6]).await, (numbers[3..6].to_vec(), true));
    assert_eq!(before(numbers[3]).await, (numbers[0..3].to_vec(), false));
}

#[sqlx::test]
async fn created_bounds_are_inclusive_from_and_exclusive_before(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(app.create_order().await.id().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    ids.reverse();
    let listed = |path: String| {
        let app = &app;
        async move { walk(app, &path, 2).await.0 }
    };
    let at = id_time(&ids[3]);
    let from = |time: OffsetDateTime| -> Vec<String> {
        ids.iter()
            .filter(|id| id_time(id) >= time)
            .cloned()
            .collect()
    };
    let before = |time: OffsetDateTime| -> Vec<String> {
        ids.iter()
            .filter(|id| id_time(id) < time)
            .cloned()
            .collect()
    };
    assert!(from(at).contains(&ids[3]) && !before(at).contains(&ids[3]));
    let half = Duration::microseconds(500);
    for time in [at, at + half, at - half] {
        let t = query_time(time);
        assert_eq!(
            listed(format!("/v1/orders?created[gte]={t}")).await,
            from(time),
            "gte {t}"
        );
        assert_eq!(
            listed(format!("/v1/orders?created[lt]={t}")).await,
            before(time),
            "lt {t}"
        );
    }
    let (low, high) = (query_time(id_time(&ids[4])), query_time(id_time(&ids[1])));
    assert_eq!(
        listed(format!("/v1/orders?created[gte]={low}&created[lt]={high}")).await,
        ids[2..5],
        "both bounds"
    );
    assert_eq!(
        walk_backwards(
            &app,
            &format!("/v1/orders?created[gte]={low}&created[lt]={high}"),
            2
        )
        .await,
        ids[2..5]
    );

    // Templates take the same bounds.
    let t = query_time(id_time(template.id()));
    let (app, id) = (&app, template.id().to_owned());
    let listed_template = |path: String| {
        let id = id.clone();
        async move { walk(app, &path, 100).await.0.contains(&id) }
    };
    assert!(listed_template(format!("/v1/templates?created[gte]={t}")).await);
    assert!(!listed_template(format!("/v1/templates?created[lt]={t}")).await);
}

#[sqlx::test]
async fn orders_can_be_filtered_by_template(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let first = app.create_template("<p>One</p>").await;
    let second = app.create_template("<p>Two</p>").await;
    let mut of_first = Vec::new();
    for i in 0..6 {
        let template = if i % 3 == 0 { &second } else { &first };
        let order = app
            .post(
                "/v1/orders",
                &json!({"template_id": template["id"], "recipient": address()}),
            )
            .await
            .json();
        if i % 3 != 0 {
            of_first.push(order.id().to_owned());
        }
    }
    of_first.reverse();
    let path = format!("/v1/orders?template_id={}", first.id());
    assert_eq!(walk(&app, &path, 3).await.0, of_first);
    assert_eq!(walk_backwards(&app, &path, 3).await, of_first);
    let none = app
        .get(&format!("/v1/orders?template_id={}", uuid::Uuid::now_v7()))
        .await
        .json();
    assert_eq!(none["data"], json!([]));
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
    let both = "starting_after=019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e&ending_before=019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e";
    let both_orders = format!("/v1/orders?{both}");
    let versions = "/v1/templates/019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e/versions";
    let version_cursor = format!("{versions}?ending_before=x");
    let versions_created = format!("{versions}?created[gte]=2026-01-01T00:00:00Z");
    let cases: [(&str, Value); 18] = [
        (&both_orders, json!(["ending_before"])),
        ("/v1/orders?ending_before=nope", json!(["ending_before"])),
        ("/v1/orders?created[gte]=yesterday", json!(["created[gte]"])),
        (
            "/v1/orders?created[lt]=2026-13-01T00:00:00Z",
            json!(["created[lt]"]),
        ),
        (
            "/v1/orders?created[gte]=2026-01-01",
            json!(["created[gte]"]),
        ),
        (
            "/v1/templates?created[lt]=2026-01-01T00:00:00 01:00",
            json!(["created[lt]"]),
        ),
        ("/v1/orders?template_id=nope", json!(["template_id"])),
        (&version_cursor, json!(["ending_before"])),
        (&versions_created, json!(["created[gte]"])),
        ("/v1/orders?limit=0", json!(["limit"])),
        ("/v1/orders?limit=101", json!(["limit"])),
        ("/v1/orders?limit=ten", json!(["limit"])),
        ("/v1/orders?starting_after=nope", json!(["starting_after"])),
        ("/v1/orders?status=lost", json!(["status"])),
        ("/v1/orders?limit=1&limit=2", json!(["limit"])),
        ("/v1/orders?lmit=5", json!(["lmit"])),
        ("/v1/templates?status=received", json!(["status"])),
        (
            "/v1/templates?template_id=019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e",
            json!(["template_id"]),
        ),
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
