//! Metadata on orders and templates: limits, merging PATCHes, and the list filter.

use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use sqlx::PgPool;

use crate::helpers::{Object, TestApp, address, count, order_path, template_path};

async fn order_with(app: &TestApp, template: &Value, metadata: Value) -> Value {
    let response = app
        .post(
            "/v1/orders",
            &json!({"template_id": template["id"], "recipient": address(), "metadata": metadata}),
        )
        .await;
    response.assert_status(StatusCode::CREATED);
    response.json()
}

fn keys(count: usize) -> Value {
    Value::Object(
        (0..count)
            .map(|i| (format!("key{i}"), json!("v")))
            .collect::<Map<_, _>>(),
    )
}

#[sqlx::test]
async fn orders_and_templates_carry_metadata_from_creation(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app
        .post(
            "/v1/templates",
            &json!({"name": "T", "format": "letter_a4", "content": "<p>x</p>",
                    "metadata": {"campaign": "winter"}}),
        )
        .await;
    template.assert_status(StatusCode::CREATED);
    let template = template.json();
    assert_eq!(template["metadata"], json!({"campaign": "winter"}));
    let order = order_with(&app, &template, json!({"customer_id": "4711"})).await;
    assert_eq!(order["metadata"], json!({"customer_id": "4711"}));
    assert_eq!(
        app.get(&order_path(order.id())).await.json()["metadata"],
        json!({"customer_id": "4711"})
    );
    assert_eq!(app.create_order().await["metadata"], json!({}));
}

#[sqlx::test]
async fn metadata_limits_give_field_errors(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>x</p>").await;
    let long_key = "k".repeat(41);
    let cases = [
        (keys(21), vec!["metadata".to_owned()]),
        (
            json!({long_key.clone(): "v"}),
            vec![format!("metadata.{long_key}")],
        ),
        (
            json!({"note": "v".repeat(501)}),
            vec!["metadata.note".to_owned()],
        ),
        (json!({"": "v"}), vec!["metadata.".to_owned()]),
        (json!({"a[b]": "v"}), vec!["metadata.a[b]".to_owned()]),
        (json!({"n": 5}), vec!["metadata.n".to_owned()]),
    ];
    for (metadata, fields) in cases {
        let response = app
            .post(
                "/v1/orders",
                &json!({"template_id": template["id"], "recipient": address(), "metadata": metadata}),
            )
            .await;
        assert_eq!(response.assert_invalid_fields(), fields, "{metadata}");
        let response = app
            .post(
                "/v1/templates",
                &json!({"name": "T", "format": "letter_a4", "content": "x", "metadata": metadata}),
            )
            .await;
        assert_eq!(response.assert_invalid_fields(), fields, "{metadata}");
    }
    // The limits themselves are allowed.
    let most = json!({"k".repeat(40): "v".repeat(500)});
    let mut twenty = keys(20);
    twenty["key0"] = json!("v".repeat(500));
    order_with(&app, &template, most).await;
    order_with(&app, &template, twenty).await;
    assert_eq!(count(&app.pool, "orders").await, 2);

    // The database holds the same limits.
    let written = sqlx::query("UPDATE orders SET metadata = $1")
        .bind(keys(21))
        .execute(&app.pool)
        .await;
    assert!(written.is_err());
}

#[sqlx::test]
async fn a_patch_merges_metadata(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>x</p>").await;
    let order = order_with(&app, &template, json!({"a": "1", "b": "2"})).await;
    let path = order_path(order.id());

    let merged = app
        .patch(
            &path,
            &json!({"metadata": {"b": null, "c": "3", "a": "one"}}),
        )
        .await;
    merged.assert_status(StatusCode::OK);
    assert_eq!(merged.json()["metadata"], json!({"a": "one", "c": "3"}));

    let untouched = app.patch(&path, &json!({"send_date": null})).await;
    assert_eq!(untouched.json()["metadata"], json!({"a": "one", "c": "3"}));
    assert_eq!(untouched.json()["updated_at"], merged.json()["updated_at"]);

    let too_many = app.patch(&path, &json!({"metadata": keys(19)})).await;
    assert_eq!(too_many.assert_invalid_fields(), ["metadata"]);
    let bad = app
        .patch(&path, &json!({"metadata": {"x": "v".repeat(501)}}))
        .await;
    assert_eq!(bad.assert_invalid_fields(), ["metadata.x"]);

    let cleared = app.patch(&path, &json!({"metadata": null})).await;
    assert_eq!(cleared.json()["metadata"], json!({}));
    assert_eq!(app.get(&path).await.json()["metadata"], json!({}));
}

#[sqlx::test]
async fn template_metadata_merges_without_a_new_version(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>x</p>").await;
    let path = template_path(template.id());
    let tagged = app
        .patch(&path, &json!({"metadata": {"campaign": "winter"}}))
        .await;
    tagged.assert_status(StatusCode::OK);
    let tagged = tagged.json();
    assert_eq!(tagged["metadata"], json!({"campaign": "winter"}));
    assert_eq!(tagged["version"], 1, "metadata is not printed");
    assert_ne!(tagged["updated_at"], template["updated_at"]);
    let same = app
        .patch(&path, &json!({"metadata": {"campaign": "winter"}}))
        .await
        .json();
    assert_eq!(same["updated_at"], tagged["updated_at"]);
    let both = app
        .patch(
            &path,
            &json!({"name": "New", "metadata": {"campaign": null}}),
        )
        .await
        .json();
    assert_eq!(both["version"], 2);
    assert_eq!(both["metadata"], json!({}));
    assert_eq!(count(&app.pool, "template_versions").await, 2);
}

#[sqlx::test]
async fn the_filter_matches_every_pair_across_pages_and_only_in_the_account(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let other = app.other_account().await;
    let template = app.create_template("<p>x</p>").await;
    let other_template = other.create_template("<p>x</p>").await;
    let mut wanted = Vec::new();
    let mut in_campaign = Vec::new();
    for i in 0..5 {
        let metadata = if i % 2 == 0 {
            json!({"customer_id": "4711", "campaign": "winter"})
        } else {
            json!({"customer_id": "4711"})
        };
        let order = order_with(&app, &template, metadata).await;
        wanted.push(order.id().to_owned());
        if i % 2 == 0 {
            in_campaign.push(order.id().to_owned());
        }
        order_with(&app, &template, json!({"customer_id": "47110"})).await;
        order_with(&other, &other_template, json!({"customer_id": "4711"})).await;
    }
    wanted.reverse();
    in_campaign.reverse();

    let mut seen = Vec::new();
    let mut query = "/v1/orders?metadata[customer_id]=4711&limit=2".to_owned();
    loop {
        let page = app.get(&query).await;
        page.assert_status(StatusCode::OK);
        let page = page.json();
        let ids: Vec<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.id().to_owned())
            .collect();
        seen.extend(ids.iter().cloned());
        if page["has_more"] == false {
            break;
        }
        query = format!(
            "/v1/orders?metadata%5Bcustomer_id%5D=4711&limit=2&starting_after={}",
            ids.last().unwrap()
        );
    }
    assert_eq!(seen, wanted, "every match, newest first, once");

    let both = app
        .get("/v1/orders?metadata[customer_id]=4711&metadata[campaign]=winter&status=received")
        .await
        .json();
    let ids: Vec<&str> = both["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.id())
        .collect();
    assert_eq!(ids, in_campaign, "pairs AND together");

    let others = other
        .get("/v1/orders?metadata[customer_id]=4711")
        .await
        .json();
    assert_eq!(others["data"].as_array().unwrap().len(), 5);
    assert!(
        others["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| !wanted.contains(&o.id().to_owned()))
    );

    let none = app.get("/v1/orders?metadata[customer_id]=1").await.json();
    assert_eq!(none["data"], json!([]));
}

#[sqlx::test]
async fn a_bad_filter_is_a_field_error(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let long = "k".repeat(41);
    for (query, field) in [
        (format!("metadata[{long}]=1"), format!("metadata.{long}")),
        (
            format!("metadata[k]={}", "v".repeat(501)),
            "metadata.k".to_owned(),
        ),
        ("metadata[]=1".to_owned(), "metadata.".to_owned()),
        ("metadata=1".to_owned(), "metadata".to_owned()),
        ("meta[k]=1".to_owned(), "meta[k]".to_owned()),
        (
            "metadata[k]=1&metadata[k]=2".to_owned(),
            "metadata[k]".to_owned(),
        ),
    ] {
        let response = app.get(&format!("/v1/orders?{query}")).await;
        assert_eq!(response.assert_invalid_fields(), [field], "{query}");
    }
}
