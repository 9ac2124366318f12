//! Conditional requests: strong `ETag`s, `If-Match` on PATCH and DELETE (412), `If-None-Match` on GET (304), and
//! tags per content-coding.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{Object, TestApp, TestResponse, count, order_path, send, template_path};

async fn with(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> TestResponse {
    let mut request = app.request(method, path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    send(request).await
}

#[sqlx::test]
async fn a_template_is_tagged_with_its_version_and_changed_only_as_last_seen(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let created = app
        .post(
            "/v1/templates",
            &json!({"name": "Welcome", "format": "postcard_a6", "content": "<p>Hi</p>"}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    assert_eq!(created.header("etag"), Some("\"1\""));
    let path = template_path(&created.id());

    let read = app.get(&path).await;
    assert_eq!(read.header("etag"), Some("\"1\""));
    let not_modified = with(
        &app,
        Method::GET,
        &path,
        &[("if-none-match", "\"1\"")],
        None,
    )
    .await;
    not_modified.assert_status(StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.header("etag"), Some("\"1\""));
    assert!(not_modified.body.is_empty());

    let rename = json!({"name": "Renamed"});
    let changed = with(
        &app,
        Method::PATCH,
        &path,
        &[("if-match", "\"1\"")],
        Some(&rename),
    )
    .await;
    changed.assert_status(StatusCode::OK);
    assert_eq!(changed.header("etag"), Some("\"2\""));
    assert_eq!(changed.json()["version"], 2);

    // A second writer that read version 1 is refused, and nothing changes.
    let stale = json!({"name": "Lost update"});
    with(
        &app,
        Method::PATCH,
        &path,
        &[("if-match", "\"1\"")],
        Some(&stale),
    )
    .await
    .assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
    with(
        &app,
        Method::PATCH,
        &path,
        &[("if-match", "W/\"2\"")],
        Some(&stale),
    )
    .await
    .assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
    let now = app.get(&path).await;
    assert_eq!(now.json()["name"], "Renamed");
    assert_eq!(now.header("etag"), Some("\"2\""));
    // A stale copy is sent again in full.
    let full = with(
        &app,
        Method::GET,
        &path,
        &[("if-none-match", "\"1\"")],
        None,
    )
    .await;
    full.assert_status(StatusCode::OK);
    assert_eq!(full.json()["version"], 2);

    with(&app, Method::DELETE, &path, &[("if-match", "\"1\"")], None)
        .await
        .assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
    assert_eq!(count(&app.pool, "templates").await, 1);
    with(&app, Method::DELETE, &path, &[("if-match", "\"2\"")], None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(count(&app.pool, "templates").await, 0);
    // No object, no precondition to evaluate: 404.
    with(
        &app,
        Method::PATCH,
        &path,
        &[("if-match", "*")],
        Some(&rename),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not-found");
}

#[sqlx::test]
async fn every_change_of_an_order_counts_up_its_tag(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hello</p>").await;
    let created = app
        .post(
            "/v1/orders",
            &json!({"template_id": template["id"], "recipient": crate::helpers::address()}),
        )
        .await;
    assert_eq!(created.header("etag"), Some("\"1\""));
    let path = order_path(&created.id());

    // A PATCH that changes nothing keeps the tag; one that changes something counts it up.
    let same = app.patch(&path, &json!({})).await;
    assert_eq!(same.header("etag"), Some("\"1\""));
    let changed = with(
        &app,
        Method::PATCH,
        &path,
        &[("if-match", "\"1\"")],
        Some(&json!({"send_date": null, "merge_variables": {"a": "b"}})),
    )
    .await;
    changed.assert_status(StatusCode::OK);
    assert_eq!(changed.header("etag"), Some("\"2\""));

    with(&app, Method::DELETE, &path, &[("if-match", "\"1\"")], None)
        .await
        .assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
    assert_eq!(app.get(&path).await.json()["status"], "received");
    let cancelled = with(
        &app,
        Method::DELETE,
        &path,
        &[("if-match", "\"2\", \"9\"")],
        None,
    )
    .await;
    cancelled.assert_status(StatusCode::OK);
    assert_eq!(cancelled.header("etag"), Some("\"3\""));
    let not_modified = with(
        &app,
        Method::GET,
        &path,
        &[("if-none-match", "W/\"3\"")],
        None,
    )
    .await;
    not_modified.assert_status(StatusCode::NOT_MODIFIED);
    with(&app, Method::GET, &path, &[("if-match", "\"2\"")], None)
        .await
        .assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
    let row_version: i32 = sqlx::query_scalar("SELECT row_version FROM orders")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(row_version, 3);
}

#[sqlx::test]
async fn a_412_is_stored_for_its_key_and_replayed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let path = template_path(template.id());
    let body = json!({"name": "Renamed"});
    let headers = [("if-match", "\"7\""), ("idempotency-key", "stale-1")];
    let first = with(&app, Method::PATCH, &path, &headers, Some(&body)).await;
    first.assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
    assert_eq!(count(&app.pool, "idempotency_keys").await, 1);
    // The retry gets the stored 412, even with a tag that would now match: the key names the first request.
    let retry = with(
        &app,
        Method::PATCH,
        &path,
        &[("if-match", "\"1\""), ("idempotency-key", "stale-1")],
        Some(&body),
    )
    .await;
    retry.assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body, first.body);
    assert_eq!(app.get(&path).await.json()["name"], "Welcome");
}

#[sqlx::test]
async fn a_compressed_answer_has_its_own_tag_which_is_accepted_back(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app
        .create_template(&format!("<p>{}</p>", "Hello {{first_name}} ".repeat(20)))
        .await;
    let path = template_path(template.id());
    for coding in ["gzip", "br", "zstd"] {
        let read = with(
            &app,
            Method::GET,
            &path,
            &[("accept-encoding", coding)],
            None,
        )
        .await;
        read.assert_status(StatusCode::OK);
        assert_eq!(read.header("content-encoding"), Some(coding));
        let tag = format!("\"1-{coding}\"");
        assert_eq!(read.header("etag"), Some(tag.as_str()));
        let not_modified = with(
            &app,
            Method::GET,
            &path,
            &[("accept-encoding", coding), ("if-none-match", &tag)],
            None,
        )
        .await;
        not_modified.assert_status(StatusCode::NOT_MODIFIED);
        assert_eq!(not_modified.header("etag"), Some(tag.as_str()));
    }
    let plain = app.get(&path).await;
    assert_eq!(plain.header("etag"), Some("\"1\""));
    // The compressed tag passes If-Match, as the plain one does.
    let changed = with(
        &app,
        Method::PATCH,
        &path,
        &[("if-match", "\"1-gzip\""), ("accept-encoding", "gzip")],
        Some(&json!({"name": "Renamed"})),
    )
    .await;
    changed.assert_status(StatusCode::OK);
    assert_eq!(changed.header("etag"), Some("\"2-gzip\""));
    assert_eq!(changed.headers[header::VARY], "accept-encoding");
}

#[sqlx::test]
async fn a_re_pin_and_a_metadata_change_count_up_an_order_s_tag(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hello</p>").await;
    let template_path = template_path(template.id());
    app.patch(&template_path, &json!({"content": "<p>Hi</p>"}))
        .await
        .assert_status(StatusCode::OK);
    let created = app
        .post(
            "/v1/orders",
            &json!({"template_id": template["id"], "recipient": crate::helpers::address()}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    assert_eq!(created.json()["template_version"], 2);
    assert_eq!(created.header("etag"), Some("\"1\""));
    let path = order_path(&created.id());

    let re_pinned = with(
        &app,
        Method::PATCH,
        &path,
        &[("if-match", "\"1\"")],
        Some(&json!({"template_version": 1})),
    )
    .await;
    re_pinned.assert_status(StatusCode::OK);
    assert_eq!(re_pinned.json()["template_version"], 1);
    assert_eq!(re_pinned.header("etag"), Some("\"2\""));

    let tagged = with(
        &app,
        Method::PATCH,
        &path,
        &[("if-match", "\"2\"")],
        Some(&json!({"metadata": {"customer_id": "4711"}})),
    )
    .await;
    tagged.assert_status(StatusCode::OK);
    assert_eq!(tagged.json()["metadata"], json!({"customer_id": "4711"}));
    assert_eq!(tagged.header("etag"), Some("\"3\""));
    with(
        &app,
        Method::PATCH,
        &path,
        &[("if-match", "\"2\"")],
        Some(&json!({"metadata": null})),
    )
    .await
    .assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
}

#[sqlx::test]
async fn a_metadata_change_counts_up_a_template_s_tag_but_not_its_version(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hello</p>").await;
    let path = template_path(template.id());

    let tagged = with(
        &app,
        Method::PATCH,
        &path,
        &[("if-match", "\"1\"")],
        Some(&json!({"metadata": {"campaign": "winter"}})),
    )
    .await;
    tagged.assert_status(StatusCode::OK);
    assert_eq!(tagged.json()["version"], 1);
    assert_eq!(tagged.header("etag"), Some("\"2\""));
    // The copy without the metadata is no longer current.
    with(
        &app,
        Method::GET,
        &path,
        &[("if-none-match", "\"1\"")],
        None,
    )
    .await
    .assert_status(StatusCode::OK);
    with(
        &app,
        Method::PATCH,
        &path,
        &[("if-match", "\"1\"")],
        Some(&json!({"metadata": null})),
    )
    .await
    .assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");

    let changed = app.patch(&path, &json!({"content": "<p>Hi</p>"})).await;
    assert_eq!(changed.json()["version"], 2);
    assert_eq!(changed.header("etag"), Some("\"3\""));
}

#[sqlx::test]
async fn a_template_version_is_tagged_with_its_number_for_good(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hello</p>").await;
    let id = template.id();
    app.patch(
        &template_path(id),
        &json!({"content": "<p>Hi</p>", "metadata": {"a": "b"}}),
    )
    .await
    .assert_status(StatusCode::OK);

    let path = format!("/v1/templates/{id}/versions/1");
    let read = app.get(&path).await;
    read.assert_status(StatusCode::OK);
    assert_eq!(read.json()["content"], "<p>Hello</p>");
    assert_eq!(read.header("etag"), Some("\"1\""));
    let not_modified = with(
        &app,
        Method::GET,
        &path,
        &[("if-none-match", "\"1\"")],
        None,
    )
    .await;
    not_modified.assert_status(StatusCode::NOT_MODIFIED);
    assert!(not_modified.body.is_empty());
    with(&app, Method::GET, &path, &[("if-match", "\"2\"")], None)
        .await
        .assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
    let latest = app.get(&format!("/v1/templates/{id}/versions/2")).await;
    assert_eq!(latest.header("etag"), Some("\"2\""));
}

#[sqlx::test]
async fn a_304_names_the_representation_this_request_gets_and_varies_as_its_200(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app
        .create_template(&format!("<p>{}</p>", "Hello {{first_name}} ".repeat(20)))
        .await;
    let path = format!("/v1/templates/{}", template["id"].as_str().unwrap());
    let read = |headers: &'static [(&'static str, &'static str)]| {
        with(&app, Method::GET, &path, headers, None)
    };

    // Without Accept-Encoding the request gets the plain body, whatever tags it holds besides.
    let not_modified = read(&[("if-none-match", "\"1\", \"1-gzip\"")]).await;
    not_modified.assert_status(StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.header("etag"), Some("\"1\""));
    assert_eq!(not_modified.header("vary"), Some("accept-encoding"));
    // A gzip tag names a body this request could not decode: the plain one is sent.
    let plain = read(&[("if-none-match", "\"1-gzip\"")]).await;
    plain.assert_status(StatusCode::OK);
    assert_eq!(plain.header("etag"), Some("\"1\""));
    assert_eq!(plain.header("vary"), Some("accept-encoding"));

    // With gzip accepted, only the gzip tag is current.
    let not_modified = read(&[
        ("accept-encoding", "gzip"),
        ("if-none-match", "W/\"1-gzip\""),
    ])
    .await;
    not_modified.assert_status(StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.header("etag"), Some("\"1-gzip\""));
    assert_eq!(not_modified.header("vary"), Some("accept-encoding"));
    let compressed = read(&[
        ("accept-encoding", "gzip, br;q=0.5"),
        ("if-none-match", "\"1\", \"1-br\""),
    ])
    .await;
    compressed.assert_status(StatusCode::OK);
    assert_eq!(compressed.header("content-encoding"), Some("gzip"));
    assert_eq!(compressed.header("etag"), Some("\"1-gzip\""));
    let any = read(&[("accept-encoding", "br"), ("if-none-match", "*")]).await;
    any.assert_status(StatusCode::NOT_MODIFIED);
    assert_eq!(any.header("etag"), Some("\"1-br\""));
}

#[sqlx::test]
async fn a_412_carries_the_current_tag(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let path = format!("/v1/templates/{}", template["id"].as_str().unwrap());
    let rename = json!({"name": "Renamed"});
    let stale = with(
        &app,
        Method::PATCH,
        &path,
        &[("if-match", "\"7\"")],
        Some(&rename),
    )
    .await;
    stale.assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
    assert_eq!(stale.header("etag"), Some("\"1\""));
    let stale = with(
        &app,
        Method::GET,
        &path,
        &[("if-match", "\"7-gzip\""), ("accept-encoding", "gzip")],
        None,
    )
    .await;
    stale.assert_status(StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.header("etag"), Some("\"1-gzip\""));
    let order = app.create_order().await;
    let stale = with(
        &app,
        Method::DELETE,
        &format!("/v1/orders/{}", order["id"].as_str().unwrap()),
        &[("if-match", "\"2\"")],
        None,
    )
    .await;
    stale.assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
    assert_eq!(stale.header("etag"), Some("\"1\""));
}

#[sqlx::test]
async fn a_precondition_that_is_not_a_list_of_entity_tags_is_a_400_that_runs_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let path = format!("/v1/templates/{}", template["id"].as_str().unwrap());
    let rename = json!({"name": "Renamed"});
    for (name, value) in [
        ("if-match", "2"),
        ("if-match", "\"2"),
        ("if-match", "*, \"1\""),
        ("if-none-match", "W/1"),
        ("if-none-match", "\"1\" \"2\""),
    ] {
        let headers = [(name, value), ("idempotency-key", "bad-precondition")];
        let refused = with(&app, Method::PATCH, &path, &headers, Some(&rename)).await;
        let problem = refused.assert_problem(StatusCode::BAD_REQUEST, "invalid-precondition");
        assert!(
            problem["detail"].as_str().unwrap().contains(name),
            "{problem}"
        );
        with(&app, Method::GET, &path, &[(name, value)], None)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "invalid-precondition");
    }
    // Nothing ran or was stored: the same key runs the corrected request.
    let headers = [
        ("if-match", "\"1\""),
        ("idempotency-key", "bad-precondition"),
    ];
    let changed = with(&app, Method::PATCH, &path, &headers, Some(&rename)).await;
    changed.assert_status(StatusCode::OK);
    assert!(changed.header("idempotent-replayed").is_none());
    assert_eq!(changed.json()["name"], "Renamed");
}
