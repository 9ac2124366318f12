//! Template versions: written once and kept, listed and read, pinned by orders, re-pinned by an order PATCH, and
//! consistent with the orders taken while the template changes.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use order_intake::db::MIGRATOR;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{Object, TestApp, address, count, eventually, order_path, template_path};

const V1: &str = "<p>Hello {{first_name}}</p>";
const V2: &str = "<p>Hello {{first_name}} from {{city}}</p>\n<!-- v2 -->";

/// A template at version 3: created with `V1`, its content changed to `V2`, then renamed.
async fn template_at_version_3(app: &TestApp) -> String {
    let template = app.create_template(V1).await;
    let id = template.id().to_owned();
    let path = template_path(&id);
    app.patch(&path, &json!({"content": V2}))
        .await
        .assert_status(StatusCode::OK);
    let renamed = app.patch(&path, &json!({"name": "Renamed"})).await;
    renamed.assert_status(StatusCode::OK);
    assert_eq!(renamed.json()["version"], 3);
    id
}

#[sqlx::test]
async fn a_template_patched_twice_still_serves_every_version_byte_for_byte(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let id = template_at_version_3(&app).await;

    let expected = [
        (1, "Welcome", V1, json!(["first_name"])),
        (2, "Welcome", V2, json!(["city", "first_name"])),
        (3, "Renamed", V2, json!(["city", "first_name"])),
    ];
    for (version, name, content, merge_fields) in &expected {
        let response = app
            .get(&format!("/v1/templates/{id}/versions/{version}"))
            .await;
        response.assert_status(StatusCode::OK);
        let body = response.json();
        assert_eq!(body["template_id"], id.as_str());
        assert_eq!(body["version"], *version);
        assert_eq!(body["name"], *name);
        assert_eq!(body["format"], "postcard_a6");
        assert_eq!(body["content"].as_str(), Some(*content), "byte for byte");
        assert_eq!(body["merge_fields"], *merge_fields);
    }

    let list = app.get(&format!("/v1/templates/{id}/versions")).await;
    list.assert_status(StatusCode::OK);
    let versions: Vec<_> = list.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [3, 2, 1], "newest first");
    assert_eq!(list.json()["has_more"], false);

    // The template itself shows its latest version.
    let template = app.get(&template_path(&id)).await.json();
    assert_eq!(template["version"], 3);
    assert_eq!(template["content"], V2);
}

#[sqlx::test]
async fn versions_page_like_other_lists(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let id = template_at_version_3(&app).await;
    let first = app
        .get(&format!("/v1/templates/{id}/versions?limit=2"))
        .await
        .json();
    assert_eq!(first["has_more"], true);
    assert_eq!(first["data"][0]["version"], 3);
    assert_eq!(first["data"][1]["version"], 2);
    let second = app
        .get(&format!(
            "/v1/templates/{id}/versions?limit=2&starting_after=2"
        ))
        .await
        .json();
    assert_eq!(second["has_more"], false);
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert_eq!(second["data"][0]["version"], 1);
    let past_the_end = app
        .get(&format!("/v1/templates/{id}/versions?starting_after=1"))
        .await;
    past_the_end.assert_status(StatusCode::OK);
    assert_eq!(past_the_end.json()["data"], json!([]));

    for bad in ["limit=0", "starting_after=0", "starting_after=x", "page=2"] {
        let response = app.get(&format!("/v1/templates/{id}/versions?{bad}")).await;
        assert_eq!(response.assert_invalid_fields().len(), 1, "{bad}");
    }
}

#[sqlx::test]
async fn versions_of_unknown_templates_and_other_accounts_are_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let id = template_at_version_3(&app).await;
    for path in [
        format!("/v1/templates/{id}/versions/4"),
        format!("/v1/templates/{id}/versions/0"),
        format!("/v1/templates/{id}/versions/one"),
        format!("/v1/templates/{id}/versions/99999999999"),
        format!("/v1/templates/{}/versions/1", uuid::Uuid::now_v7()),
        format!("/v1/templates/{}/versions", uuid::Uuid::now_v7()),
        "/v1/templates/nope/versions/1".to_owned(),
    ] {
        app.get(&path)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not-found");
    }
    let other = app.other_account().await;
    for path in [
        format!("/v1/templates/{id}/versions/1"),
        format!("/v1/templates/{id}/versions"),
    ] {
        other
            .get(&path)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not-found");
    }
}

#[sqlx::test]
async fn an_order_is_checked_against_its_own_version_and_may_be_re_pinned(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template(V1).await;
    let template_id = template.id();
    let order = app
        .post(
            "/v1/orders",
            &json!({"template_id": template_id, "recipient": address(),
                    "merge_variables": {"first_name": "Anna"}}),
        )
        .await;
    order.assert_status(StatusCode::CREATED);
    let path = order_path(&order.id());
    // Version 2 needs `city` too.
    app.patch(&template_path(template_id), &json!({"content": V2}))
        .await
        .assert_status(StatusCode::OK);

    // The order still prints version 1, so new merge variables are checked against it.
    let changed = app
        .patch(&path, &json!({"merge_variables": {"first_name": "Ann"}}))
        .await;
    changed.assert_status(StatusCode::OK);
    assert_eq!(changed.json()["template_version"], 1);

    // Re-pinned to version 2, the variables lack `city`.
    let missing = app.patch(&path, &json!({"template_version": 2})).await;
    let problem =
        missing.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "missing-merge-variables");
    assert_eq!(problem["errors"][0]["field"], "merge_variables.city");
    assert_eq!(app.get(&path).await.json()["template_version"], 1);

    let repinned = app
        .patch(
            &path,
            &json!({"template_version": 2, "merge_variables": {"first_name": "Ann", "city": "Delft"}}),
        )
        .await;
    repinned.assert_status(StatusCode::OK);
    assert_eq!(repinned.json()["template_version"], 2);

    // Now the order's own version is 2: dropping `city` is refused.
    let dropped = app
        .patch(&path, &json!({"merge_variables": {"first_name": "Ann"}}))
        .await;
    dropped.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "missing-merge-variables");

    // Back to version 1, which needs only `first_name`.
    let back = app.patch(&path, &json!({"template_version": 1})).await;
    back.assert_status(StatusCode::OK);
    assert_eq!(back.json()["template_version"], 1);

    for bad in [json!(3), json!(0), json!(null), json!("2"), json!(2.5)] {
        let response = app.patch(&path, &json!({"template_version": bad})).await;
        assert_eq!(
            response.assert_invalid_fields(),
            ["template_version"],
            "{bad}"
        );
    }
    assert_eq!(app.get(&path).await.json()["template_version"], 1);
}

#[sqlx::test]
async fn a_template_with_an_order_on_any_version_cannot_be_deleted(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template(V1).await;
    let template_id = template.id();
    app.post(
        "/v1/orders",
        &json!({"template_id": template_id, "recipient": address(),
                "merge_variables": {"first_name": "Anna"}}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    app.patch(
        &template_path(template_id),
        &json!({"content": "<p>No fields</p>"}),
    )
    .await
    .assert_status(StatusCode::OK);
    // The order refers to version 1 only; the template stays.
    app.delete(&template_path(template_id))
        .await
        .assert_problem(StatusCode::CONFLICT, "template-in-use");
    assert_eq!(count(&app.pool, "template_versions").await, 2);

    // A template without orders goes, with all its versions.
    let unused = template_at_version_3(&app).await;
    app.delete(&template_path(&unused))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.get(&format!("/v1/templates/{unused}/versions/1"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    assert_eq!(count(&app.pool, "template_versions").await, 2);
}

#[sqlx::test]
async fn versions_are_written_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let id = template_at_version_3(&app).await;
    // A version that exists cannot be written again: the primary key holds it.
    let again = sqlx::query(
        "INSERT INTO template_versions (account_id, template_id, version, name, format, content)
         VALUES ($1, $2, 2, 'Other', 'letter_a4', 'other')",
    )
    .bind(app.account_id)
    .bind(uuid::Uuid::parse_str(&id).unwrap())
    .execute(&app.pool)
    .await;
    assert!(again.is_err());
    let v2 = app
        .get(&format!("/v1/templates/{id}/versions/2"))
        .await
        .json();
    assert_eq!(v2["content"], V2);
}

/// Template PATCHes race order creation: every order taken must have been checked against the version it records,
/// and print that version.
#[sqlx::test]
async fn a_template_patch_racing_order_creation_leaves_every_order_consistent(pool: PgPool) {
    const PATCHES: usize = 12;
    const ORDERS: usize = 48;
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>{{f0}}</p>").await;
    let template_id = template.id().to_owned();

    // Version k + 1 has the one merge field `f<k>`; each order leaves out one field, so that some are taken and
    // some are refused depending on the version they meet.
    let patches = (1..=PATCHES).map(|k| {
        let app = &app;
        let path = template_path(&template_id);
        async move {
            app.patch(
                &path,
                &json!({"content": format!("<p>{{{{f{k}}}}} v{k}</p>")}),
            )
            .await
        }
    });
    let orders = (0..ORDERS).map(|n| {
        let app = &app;
        let template_id = template_id.clone();
        let variables: serde_json::Map<String, Value> = (0..=PATCHES)
            .filter(|k| *k != n % (PATCHES + 1))
            .map(|k| (format!("f{k}"), json!(format!("value {k} of order {n}"))))
            .collect();
        async move {
            let response = app
                .post(
                    "/v1/orders",
                    &json!({"template_id": template_id, "recipient": address(),
                            "merge_variables": variables}),
                )
                .await;
            (n, response)
        }
    });
    let (patched, taken) = tokio::join!(join_all(patches), join_all(orders));
    for response in &patched {
        response.assert_status(StatusCode::OK);
    }
    // The PATCHes race each other too: which content became which version, from their answers.
    let mut field_of_version: BTreeMap<i64, usize> = BTreeMap::from([(1, 0)]);
    for (k, response) in (1..=PATCHES).zip(&patched) {
        field_of_version.insert(response.json()["version"].as_i64().unwrap(), k);
    }
    assert_eq!(
        field_of_version.keys().copied().collect::<Vec<_>>(),
        (1..=PATCHES as i64 + 1).collect::<Vec<_>>()
    );

    let mut accepted = 0;
    for (n, response) in &taken {
        if response.status == StatusCode::UNPROCESSABLE_ENTITY {
            response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "missing-merge-variables");
            continue;
        }
        response.assert_status(StatusCode::CREATED);
        accepted += 1;
        let order = response.json();
        let version = order["template_version"].as_i64().unwrap();
        let row = app
            .get(&format!("/v1/templates/{template_id}/versions/{version}"))
            .await
            .json();
        for field in row["merge_fields"].as_array().unwrap() {
            assert!(
                order["merge_variables"][field.as_str().unwrap()].is_string(),
                "order {n} at version {version} lacks {field}"
            );
        }
        let rendered = app.get(&format!("/v1/orders/{}/render", order.id())).await;
        rendered.assert_status(StatusCode::OK);
        let k = field_of_version[&version];
        assert_eq!(
            String::from_utf8(rendered.body.clone()).unwrap(),
            if k == 0 {
                format!("<p>value 0 of order {n}</p>")
            } else {
                format!("<p>value {k} of order {n} v{k}</p>")
            },
            "order {n} prints the version it recorded"
        );
    }
    assert!(accepted > 0, "some orders were taken");
    assert_eq!(count(&app.pool, "orders").await, accepted);
}

/// The back-fill: templates and orders from before versions were kept get version rows, and every order keeps the
/// version it recorded.
#[sqlx::test(migrations = false)]
async fn the_migration_back_fills_versions_for_existing_templates_and_orders(pool: PgPool) {
    const FIRST_OF_VERSIONS: i64 = 20261129200000;
    for migration in MIGRATOR.iter().filter(|m| m.version < FIRST_OF_VERSIONS) {
        sqlx::raw_sql(migration.sql.clone())
            .execute(&pool)
            .await
            .expect("earlier migration");
    }
    let account = uuid::Uuid::now_v7();
    let template = uuid::Uuid::now_v7();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        r#"INSERT INTO accounts (id, name) VALUES ('{account}', 'Before');
           INSERT INTO templates (id, account_id, name, format, content, merge_fields, version)
           VALUES ('{template}', '{account}', 'Old', 'letter_a4', '<p>{{{{a}}}}</p>', '{{a}}', 3);
           INSERT INTO orders (id, account_id, template_id, template_version, recipient, merge_variables)
           SELECT gen_random_uuid(), '{account}', '{template}', v,
                  '{{"name":"A","street":"S","house_number":"1","postal_code":"1","city":"C","country":"NL"}}',
                  '{{"a":"x"}}'
           FROM (VALUES (1), (3), (3)) AS versions (v);"#
    )))
    .execute(&pool)
    .await
    .expect("data of the earlier schema");
    for migration in MIGRATOR.iter().filter(|m| m.version >= FIRST_OF_VERSIONS) {
        sqlx::raw_sql(migration.sql.clone())
            .execute(&pool)
            .await
            .expect("versions migration");
    }

    let rows: Vec<(i32, String, Vec<String>)> = sqlx::query_as(
        "SELECT version, content, merge_fields FROM template_versions
         WHERE account_id = $1 AND template_id = $2 ORDER BY version",
    )
    .bind(account)
    .bind(template)
    .fetch_all(&pool)
    .await
    .unwrap();
    // The current version, and version 1 that an order refers to (recreated from the current content); version 2
    // was never ordered and is not known.
    assert_eq!(
        rows,
        [
            (1, "<p>{{a}}</p>".to_owned(), vec!["a".to_owned()]),
            (3, "<p>{{a}}</p>".to_owned(), vec!["a".to_owned()]),
        ]
    );
    let pinned: Vec<i32> =
        sqlx::query_scalar("SELECT template_version FROM orders ORDER BY template_version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(pinned, [1, 3, 3]);
    let metadata: Vec<Value> = sqlx::query_scalar("SELECT metadata FROM orders")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(metadata.iter().all(|m| *m == json!({})));
}

/// An order whose template is deleted between reading its version and writing the order gets the same 422 as an
/// order for a template that never existed: the foreign key to the version row tells.
#[sqlx::test]
async fn an_order_racing_the_deletion_of_its_template_gets_template_not_found(pool: PgPool) {
    let app = std::sync::Arc::new(TestApp::spawn(pool).await);
    let template = app.create_template(V1).await;
    let mut deletion = app.pool.begin().await.unwrap();
    sqlx::query("DELETE FROM templates WHERE id = $1")
        .bind(template.uuid())
        .execute(&mut *deletion)
        .await
        .unwrap();
    let order = tokio::spawn({
        let app = std::sync::Arc::clone(&app);
        let body = json!({"template_id": template["id"], "recipient": address(),
                          "merge_variables": {"first_name": "Anna"}});
        async move { app.post("/v1/orders", &body).await }
    });
    // The order has read the version (the deletion is not committed) and waits on its row to write.
    let pool = app.pool.clone();
    eventually(std::time::Duration::from_secs(10), || {
        let pool = pool.clone();
        async move {
            (crate::helpers::lock_waits(&pool).await == 1)
                .then_some(())
                .ok_or_else(|| "the order does not wait for the version row".to_owned())
        }
    })
    .await;
    deletion.commit().await.unwrap();
    let order = order.await.unwrap();
    let problem = order.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "template-not-found");
    assert_eq!(problem["errors"][0]["field"], "template_id");
    assert_eq!(count(&app.pool, "orders").await, 0);
}
