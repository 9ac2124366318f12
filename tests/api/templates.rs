//! Templates: create, read, update with versions and merge fields, delete, and every field rule.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{Object, TestApp, address, count, order_path, template_path};

#[sqlx::test]
async fn create_returns_the_template_with_its_location(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let response = app
        .post(
            "/v1/templates",
            &json!({"name": "Welcome", "format": "greeting_card", "content": "<p>{{ last_name }}, {{first_name}} {{last_name}}</p>"}),
        )
        .await;
    response.assert_status(StatusCode::CREATED);
    let template = response.json();
    let id = template.id();
    assert_eq!(
        response.header("location"),
        Some(template_path(id).as_str())
    );
    assert_eq!(template["name"], "Welcome");
    assert_eq!(template["format"], "greeting_card");
    assert_eq!(template["merge_fields"], json!(["first_name", "last_name"]));
    assert_eq!(template["version"], 1);
    assert_eq!(template["created_at"], template["updated_at"]);

    let fetched = app.get(&template_path(id)).await;
    fetched.assert_status(StatusCode::OK);
    assert_eq!(fetched.json(), template);
}

#[sqlx::test]
async fn patch_counts_a_version_only_when_something_changes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi {{first_name}}</p>").await;
    let path = template_path(template.id());

    let renamed = app.patch(&path, &json!({"name": "Renamed"})).await;
    renamed.assert_status(StatusCode::OK);
    assert_eq!(renamed.json()["version"], 2);
    assert_eq!(renamed.json()["name"], "Renamed");

    let unchanged = app
        .patch(&path, &json!({"name": "Renamed", "format": "postcard_a6"}))
        .await;
    unchanged.assert_status(StatusCode::OK);
    assert_eq!(unchanged.json()["version"], 2);
    assert_eq!(unchanged.json()["updated_at"], renamed.json()["updated_at"]);

    let empty = app.patch(&path, &json!({})).await;
    assert_eq!(empty.json()["version"], 2);

    let recontent = app
        .patch(
            &path,
            &json!({"content": "<p>{{city}} {{zip}}</p>", "format": "letter_a4"}),
        )
        .await;
    recontent.assert_status(StatusCode::OK);
    let updated = recontent.json();
    assert_eq!(updated["version"], 3);
    assert_eq!(updated["format"], "letter_a4");
    assert_eq!(updated["merge_fields"], json!(["city", "zip"]));
    assert_eq!(updated["created_at"], template["created_at"]);
    assert_ne!(updated["updated_at"], template["updated_at"]);
    assert_eq!(app.get(&path).await.json(), updated);
}

#[sqlx::test]
async fn patch_rejects_null_and_invalid_members(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let path = template_path(template.id());
    let response = app
        .patch(&path, &json!({"name": null, "content": "{{bad name}}"}))
        .await;
    assert_eq!(response.assert_invalid_fields(), ["name", "content"]);
    assert_eq!(app.get(&path).await.json(), template);
}

#[sqlx::test]
async fn delete_removes_an_unused_template(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let path = template_path(template.id());
    let response = app.delete(&path).await;
    response.assert_status(StatusCode::NO_CONTENT);
    assert!(response.body.is_empty());
    app.get(&path)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    app.delete(&path)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
}

#[sqlx::test]
async fn delete_refuses_a_template_that_orders_use(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    let path = template_path(order["template_id"].as_str().expect("template_id"));
    let problem = app
        .delete(&path)
        .await
        .assert_problem(StatusCode::CONFLICT, "template-in-use");
    assert!(
        problem["detail"].as_str().unwrap().contains("1 order"),
        "{problem}"
    );
    app.get(&path).await.assert_status(StatusCode::OK);
}

#[sqlx::test]
async fn every_field_rule_is_reported_and_nothing_is_written(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let cases = [
        (
            json!({"name": "", "format": "postcard_a6", "content": "x"}),
            "name",
        ),
        (
            json!({"name": " ", "format": "postcard_a6", "content": "x"}),
            "name",
        ),
        (
            json!({"name": "n".repeat(201), "format": "postcard_a6", "content": "x"}),
            "name",
        ),
        (
            json!({"name": "n", "format": "postcard_a7", "content": "x"}),
            "format",
        ),
        (
            json!({"name": "n", "format": "postcard_a6", "content": ""}),
            "content",
        ),
        (
            json!({"name": "n", "format": "postcard_a6", "content": "a".repeat(512 * 1024 + 1)}),
            "content",
        ),
        (
            json!({"name": "n", "format": "postcard_a6", "content": "{{first name}}"}),
            "content",
        ),
        (
            json!({"name": "n", "format": "postcard_a6", "content": "{{unclosed"}),
            "content",
        ),
        (json!({"name": "n", "format": "postcard_a6"}), "content"),
        (
            json!({"name": 5, "format": "postcard_a6", "content": "x"}),
            "name",
        ),
        (
            json!({"name": "n", "format": "postcard_a6", "content": "x", "nmae": "typo"}),
            "nmae",
        ),
    ];
    for (body, field) in cases {
        let response = app.post("/v1/templates", &body).await;
        assert_eq!(response.assert_invalid_fields(), [field], "body: {body}");
    }
    assert_eq!(count(&app.pool, "templates").await, 0);
}

#[sqlx::test]
async fn limits_are_inclusive(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let body =
        json!({"name": "é".repeat(200), "format": "letter_a4", "content": "a".repeat(512 * 1024)});
    app.post("/v1/templates", &body)
        .await
        .assert_status(StatusCode::CREATED);
}

#[sqlx::test]
async fn an_order_keeps_the_template_version_it_was_taken_with(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let path = template_path(template.id());
    app.patch(&path, &json!({"name": "v2"}))
        .await
        .assert_status(StatusCode::OK);
    let order = app
        .post(
            "/v1/orders",
            &json!({"template_id": template["id"], "recipient": address()}),
        )
        .await;
    order.assert_status(StatusCode::CREATED);
    assert_eq!(order.json()["template_version"], 2);
    app.patch(&path, &json!({"name": "v3"}))
        .await
        .assert_status(StatusCode::OK);
    let order_path = order_path(&order.id());
    assert_eq!(app.get(&order_path).await.json()["template_version"], 2);
}
