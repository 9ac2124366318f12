//! Rendering: an order prints its own version, variables are HTML-escaped, and a preview needs no order.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{Object, TestApp, TestResponse, address, count, order_path, template_path};

const HTML: &str = "text/html; charset=utf-8";

fn html(response: &TestResponse) -> String {
    response.assert_status(StatusCode::OK);
    assert_eq!(response.header("content-type"), Some(HTML));
    String::from_utf8(response.body.clone()).expect("UTF-8")
}

async fn order(app: &TestApp, template: &Value, variables: Value) -> String {
    let response = app
        .post(
            "/v1/orders",
            &json!({"template_id": template["id"], "recipient": address(), "merge_variables": variables}),
        )
        .await;
    response.assert_status(StatusCode::CREATED);
    response.id()
}

#[sqlx::test]
async fn an_order_taken_at_v1_renders_v1_after_the_template_moved_on(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app
        .create_template("<p>Hello {{ first_name }}, welcome to {{city}}!</p>")
        .await;
    let id = order(
        &app,
        &template,
        json!({"first_name": "Anna", "city": "Amsterdam", "extra": "unused"}),
    )
    .await;
    app.patch(
        &template_path(template.id()),
        &json!({"content": "<h1>Goodbye {{first_name}}</h1>"}),
    )
    .await
    .assert_status(StatusCode::OK);

    let rendered = app.get(&format!("/v1/orders/{id}/render")).await;
    assert_eq!(html(&rendered), "<p>Hello Anna, welcome to Amsterdam!</p>");
    // A new order prints the new version.
    let new = order(&app, &template, json!({"first_name": "Bram"})).await;
    assert_eq!(
        html(&app.get(&format!("/v1/orders/{new}/render")).await),
        "<h1>Goodbye Bram</h1>"
    );
}

#[sqlx::test]
async fn variables_are_escaped_in_text_and_in_attributes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app
        .create_template(r#"<a title="{{v}}" data-x='{{v}}'>{{v}}</a>"#)
        .await;
    let id = order(
        &app,
        &template,
        json!({"v": r#"<script>alert("x")</script> & 'y'"#}),
    )
    .await;
    let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;y&#x27;";
    assert_eq!(
        html(&app.get(&format!("/v1/orders/{id}/render")).await),
        format!(r#"<a title="{escaped}" data-x='{escaped}'>{escaped}</a>"#)
    );
}

#[sqlx::test]
async fn a_cancelled_order_still_renders(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>{{name}}</p>").await;
    let id = order(&app, &template, json!({"name": "Anna"})).await;
    app.delete(&order_path(&id))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        html(&app.get(&format!("/v1/orders/{id}/render")).await),
        "<p>Anna</p>"
    );
}

#[sqlx::test]
async fn orders_of_other_accounts_and_unknown_ids_do_not_render(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    let path = format!("/v1/orders/{}/render", order.id());
    assert_eq!(html(&app.get(&path).await), "<p>Hello</p>");
    let other = app.other_account().await;
    other
        .get(&path)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    app.get(&format!("/v1/orders/{}/render", uuid::Uuid::now_v7()))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    app.get("/v1/orders/x/render")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
}

#[sqlx::test]
async fn a_preview_renders_the_latest_or_a_given_version_and_writes_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>v1 {{a}}</p>").await;
    let id = template.id();
    app.patch(
        &template_path(id),
        &json!({"content": "<p>v2 {{a}} {{b}}</p>"}),
    )
    .await
    .assert_status(StatusCode::OK);
    let path = format!("/v1/templates/{id}/render");

    let latest = app
        .post(&path, &json!({"merge_variables": {"a": "<1>", "b": "2"}}))
        .await;
    assert_eq!(html(&latest), "<p>v2 &lt;1&gt; 2</p>");
    let first = app
        .post(&path, &json!({"merge_variables": {"a": "1"}, "version": 1}))
        .await;
    assert_eq!(html(&first), "<p>v1 1</p>");

    let missing = app
        .post(&path, &json!({"merge_variables": {"a": "1"}}))
        .await;
    let problem =
        missing.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "missing-merge-variables");
    assert_eq!(
        problem["errors"],
        json!([{"field": "merge_variables.b", "message": "required by the template"}])
    );
    // The same problem as an order that lacks the variable.
    let order = app
        .post(
            "/v1/orders",
            &json!({"template_id": id, "recipient": address(), "merge_variables": {"a": "1"}}),
        )
        .await;
    assert_eq!(
        order.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "missing-merge-variables")["errors"],
        problem["errors"]
    );

    let unknown = app
        .post(&path, &json!({"merge_variables": {}, "version": 3}))
        .await;
    assert_eq!(unknown.assert_invalid_fields(), ["version"]);
    app.post(
        &format!("/v1/templates/{}/render", uuid::Uuid::now_v7()),
        &json!({}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not-found");
    for bad in [
        json!({"version": 0}),
        json!({"version": "1"}),
        json!({"merge_variables": {"a b": "1"}}),
        json!({"merge_variables": {}, "versions": 1}),
    ] {
        assert_eq!(
            app.post(&path, &bad).await.assert_invalid_fields().len(),
            1,
            "{bad}"
        );
    }
    assert_eq!(count(&app.pool, "orders").await, 0);
}

#[sqlx::test]
async fn a_keyed_preview_passes_the_exactly_once_layer_unchanged(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>{{a}}</p>").await;
    let path = format!("/v1/templates/{}/render", template.id());
    let body = json!({"merge_variables": {"a": "x"}});
    let first = app.keyed(Method::POST, &path, "preview-1", &body).await;
    assert_eq!(html(&first), "<p>x</p>");
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = app.keyed(Method::POST, &path, "preview-1", &body).await;
    assert_eq!(html(&again), "<p>x</p>");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    app.keyed(
        Method::POST,
        &path,
        "preview-1",
        &json!({"merge_variables": {"a": "y"}}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
}

#[sqlx::test]
async fn a_placeholder_that_could_become_markup_is_refused_with_every_other_one(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let content = "<img src=logo.png alt={{first_name}}>\n<p>{{ok}}</p><a href=\"{{url}}\">x</a>\
                   <script>var n = '{{name}}';</script>{{bad name}}";
    let response = app
        .post(
            "/v1/templates",
            &json!({"name": "n", "format": "postcard_a6", "content": content}),
        )
        .await;
    let problem = response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    let errors: Vec<(&str, &str)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["message"].as_str().unwrap()))
        .collect();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(errors.iter().all(|(field, _)| *field == "content"));
    for (error, (placeholder, at, reason)) in errors.iter().zip([
        (
            "{{first_name}}",
            "line 1, column 23",
            "unquoted value of `alt`",
        ),
        ("{{url}}", "line 2, column 23", "start of the URL in `href`"),
        ("{{name}}", "line 2, column 54", "inside `<script>`"),
        ("{{bad name}}", "line 2, column 73", "a merge field name is"),
    ]) {
        let message = error.1;
        assert!(
            message.starts_with(at) && message.contains(placeholder) && message.contains(reason),
            "{message}"
        );
    }
    assert_eq!(count(&app.pool, "templates").await, 0);
}

#[sqlx::test]
async fn a_variable_cannot_add_an_attribute_to_an_accepted_template(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app
        .create_template(r#"<img src="logo.png" alt="{{first_name}}" title='{{first_name}}'>"#)
        .await;
    let id = order(
        &app,
        &template,
        json!({"first_name": "x onerror=alert(1) `"}),
    )
    .await;
    let escaped = "x onerror&#x3D;alert(1) &#x60;";
    assert_eq!(
        html(&app.get(&format!("/v1/orders/{id}/render")).await),
        format!(r#"<img src="logo.png" alt="{escaped}" title='{escaped}'>"#)
    );
}
