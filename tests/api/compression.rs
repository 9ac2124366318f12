//! Response compression: gzip, Brotli and zstd on request, with replays identical in their decoded bytes.

use std::io::Read;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, TestResponse, send};

/// The body as the client reads it once it has undone `Content-Encoding`.
fn decoded(response: &TestResponse) -> Vec<u8> {
    let mut body = Vec::new();
    match response.header("content-encoding") {
        None => body.clone_from(&response.body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(&response.body[..])
                .read_to_end(&mut body)
                .expect("gzip");
        }
        Some("br") => {
            brotli_decompressor::Decompressor::new(&response.body[..], 4096)
                .read_to_end(&mut body)
                .expect("br");
        }
        Some("zstd") => body = zstd::decode_all(&response.body[..]).expect("zstd"),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    body
}

async fn keyed_order(app: &TestApp, order: &Value, accept_encoding: Option<&str>) -> TestResponse {
    let mut request = app
        .request(Method::POST, "/v1/orders")
        .header("idempotency-key", "compressed-order")
        .json(order);
    if let Some(encodings) = accept_encoding {
        request = request.header("accept-encoding", encodings);
    }
    send(request).await
}

#[sqlx::test]
async fn a_compressed_keyed_post_and_its_replays_decode_to_the_same_bytes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hello {{first_name}}</p>").await;
    let order = json!({
        "template_id": template["id"],
        "recipient": crate::helpers::address(),
        "merge_variables": {"first_name": "Anna"},
    });

    let first = keyed_order(&app, &order, Some("gzip")).await;
    first.assert_status(StatusCode::CREATED);
    assert_eq!(first.header("content-encoding"), Some("gzip"));
    assert!(
        first
            .header("vary")
            .is_some_and(|vary| vary.contains("accept-encoding"))
    );
    let original = decoded(&first);
    assert_ne!(first.body, original, "the body on the wire is compressed");
    let created: Value = serde_json::from_slice(&original).expect("JSON once decoded");
    assert_eq!(created["merge_variables"]["first_name"], "Anna");

    // The key stores the answer as the endpoint gave it, before compression.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT response_body FROM idempotency_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, original);

    for encoding in [Some("gzip"), Some("br"), Some("zstd"), None] {
        let replay = keyed_order(&app, &order, encoding).await;
        replay.assert_status(StatusCode::CREATED);
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.header("content-encoding"), encoding, "{encoding:?}");
        assert_eq!(replay.header("location"), first.header("location"));
        assert_eq!(decoded(&replay), original, "{encoding:?}");
    }
    assert_eq!(crate::helpers::count(&app.pool, "orders").await, 1);
}

#[sqlx::test]
async fn each_encoding_is_served_when_asked_for_and_none_otherwise(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let plain = send(app.client.get(app.url("/openapi.json"))).await;
    plain.assert_status(StatusCode::OK);
    assert_eq!(plain.header("content-encoding"), None);
    for (accept, chosen) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip;q=0.5, br;q=1.0", "br"),
        ("deflate, gzip;q=0.1", "gzip"),
    ] {
        let answer = send(
            app.client
                .get(app.url("/openapi.json"))
                .header("accept-encoding", accept),
        )
        .await;
        answer.assert_status(StatusCode::OK);
        assert_eq!(answer.header("content-encoding"), Some(chosen), "{accept}");
        assert!(
            answer.body.len() * 4 < plain.body.len(),
            "{accept}: {} bytes",
            answer.body.len()
        );
        assert_eq!(decoded(&answer), plain.body, "{accept}");
    }
    let identity = send(
        app.client
            .get(app.url("/openapi.json"))
            .header("accept-encoding", "identity"),
    )
    .await;
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(identity.body, plain.body);
}

#[sqlx::test]
async fn problems_are_compressed_too_and_stay_problem_documents(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let answer = send(
        app.client
            .get(app.url("/v1/orders"))
            .header("accept-encoding", "gzip"),
    )
    .await;
    answer.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(answer.header("content-encoding"), Some("gzip"));
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    let problem: Value = serde_json::from_slice(&decoded(&answer)).unwrap();
    assert_eq!(problem["type"], "/problems/unauthorized");
}

/// The compression layer answers 406 only after the endpoint ran; such a field is disregarded first, so the write
/// is answered as it happened, in plain bytes.
#[sqlx::test]
async fn an_accept_encoding_that_excludes_every_coding_gets_the_plain_answer(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hello</p>").await;
    for (n, field) in [
        "identity;q=0",
        "*;q=0",
        "deflate, identity;q=0",
        "gzip;q=0, br;q=0, zstd;q=0, identity;q=0",
    ]
    .into_iter()
    .enumerate()
    {
        let created = send(
            app.request(Method::POST, "/v1/orders")
                .header("accept-encoding", field)
                .json(&crate::helpers::order_for(&template)),
        )
        .await;
        created.assert_status(StatusCode::CREATED);
        assert_eq!(created.header("content-encoding"), None, "{field}");
        assert!(created.json()["id"].is_string(), "{field}");
        assert_eq!(
            crate::helpers::count(&app.pool, "orders").await,
            i64::try_from(n + 1).unwrap()
        );
    }
    let chosen = send(
        app.client
            .get(app.url("/openapi.json"))
            .header("accept-encoding", "*;q=0, zstd"),
    )
    .await;
    assert_eq!(chosen.header("content-encoding"), Some("zstd"));
}
