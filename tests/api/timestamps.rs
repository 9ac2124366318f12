//! Timestamps: one format in every object and list, RFC 3339 in UTC with six fractional digits.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, order_for};

/// Whether `text` is `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn is_timestamp(text: &str) -> bool {
    let shape = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    text.len() == shape.len()
        && text.chars().zip(shape.chars()).all(|(c, s)| match s {
            'd' => c.is_ascii_digit(),
            s => c == s,
        })
}

/// Every member named `*_at` in `value`, at any depth, with its path.
fn timestamps(value: &Value, path: &str, found: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(members) => {
            for (name, member) in members {
                let path = format!("{path}.{name}");
                if name.ends_with("_at") {
                    found.push((path.clone(), member.clone()));
                }
                timestamps(member, &path, found);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                timestamps(item, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

#[sqlx::test]
async fn every_timestamp_of_every_object_and_list_has_one_format(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let template_path = format!("/v1/templates/{}", template["id"].as_str().unwrap());
    let order = app
        .keyed(
            Method::POST,
            "/v1/orders",
            "timestamps-1",
            &order_for(&template),
        )
        .await;
    order.assert_status(StatusCode::CREATED);
    let order = order.json();
    let order_path = format!("/v1/orders/{}", order["id"].as_str().unwrap());
    let batch = app
        .post(
            "/v1/order_batches",
            &json!({"template_id": template["id"], "orders": [
                {"idempotency_key": "timestamps-2", "recipient": crate::helpers::address()}]}),
        )
        .await;
    batch.assert_status(StatusCode::CREATED);
    let batch = batch.json();
    let batch_path = format!("/v1/order_batches/{}", batch["id"].as_str().unwrap());

    let mut documents = vec![template.clone(), order.clone(), batch];
    for path in [
        template_path.clone(),
        format!("{template_path}/versions"),
        format!("{template_path}/versions/1"),
        "/v1/templates".to_owned(),
        order_path.clone(),
        "/v1/orders".to_owned(),
        batch_path.clone(),
        "/v1/order_batches".to_owned(),
        format!("{batch_path}/rows"),
        "/v1/idempotency_keys/timestamps-1".to_owned(),
    ] {
        let response = app.get(&path).await;
        response.assert_status(StatusCode::OK);
        documents.push(response.json());
    }
    let mut found = Vec::new();
    for document in &documents {
        timestamps(document, "", &mut found);
    }
    let names: std::collections::BTreeSet<&str> = found
        .iter()
        .filter_map(|(path, _)| path.rsplit('.').next())
        .collect();
    for name in ["created_at", "updated_at", "completed_at", "expires_at"] {
        assert!(names.contains(name), "no {name} among {names:?}");
    }
    for (path, value) in &found {
        assert!(value.as_str().is_some_and(is_timestamp), "{path}: {value}");
    }
    // What a write answers is what a read gives back.
    assert_eq!(
        app.get(&order_path).await.json()["created_at"],
        order["created_at"]
    );
    assert_eq!(
        app.get(&template_path).await.json()["created_at"],
        template["created_at"]
    );
}
