//! Bad input: each kind gets its own status and a problem body, and nothing is written.

use reqwest::{Method, StatusCode, header};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{Object, TestApp, count, order_path, send, template_path};

#[sqlx::test]
async fn malformed_json_is_400(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let bodies: [&[u8]; 5] = [
        b"{\"name\": ",
        b"not json",
        b"",
        b"{\"name\": \"\xff\xfe\"}",
        b"{\"a\": 1e999}",
    ];
    for body in bodies {
        let response = send(
            app.request(Method::POST, "/v1/templates")
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_vec()),
        )
        .await;
        response.assert_problem(StatusCode::BAD_REQUEST, "malformed-json");
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let response = send(
        app.request(Method::POST, "/v1/orders")
            .header(header::CONTENT_TYPE, "application/json")
            .body(deep),
    )
    .await;
    response.assert_problem(StatusCode::BAD_REQUEST, "malformed-json");
    assert_eq!(count(&app.pool, "templates").await, 0);
}

#[sqlx::test]
async fn a_body_that_is_not_an_object_is_422(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    let order_path = order_path(order.id());
    for body in [json!([]), json!("text"), json!(null), json!(42)] {
        let response = app.post("/v1/templates", &body).await;
        response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
        // An empty array would deserialize as a PATCH that changes nothing.
        let response = app.patch(&order_path, &body).await;
        response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    }
}

#[sqlx::test]
async fn a_body_that_is_not_json_is_415(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let body = r#"{"name": "n", "format": "postcard_a6", "content": "x"}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/merge-patch+json"),
        Some("application/vnd.api+json"),
        Some("application/json; charset=iso-8859-1"),
        None,
    ] {
        let mut request = app.request(Method::POST, "/v1/templates").body(body);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        send(request)
            .await
            .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    }
    let ok = send(
        app.request(Method::POST, "/v1/templates")
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body),
    )
    .await;
    ok.assert_status(StatusCode::CREATED);
    assert_eq!(count(&app.pool, "templates").await, 1);

    // A PATCH is refused the same way, merge-patch included: nested objects would not be merged as RFC 7396 says.
    let template = ok.json();
    let path = template_path(template.id());
    let response = send(
        app.request(Method::PATCH, &path)
            .header(header::CONTENT_TYPE, "application/merge-patch+json")
            .body(r#"{"name": "changed"}"#),
    )
    .await;
    response.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    for content_type in ["APPLICATION/JSON;CHARSET=\"UTF-8\"", "application/json"] {
        send(
            app.request(Method::PATCH, &path)
                .header(header::CONTENT_TYPE, content_type)
                .body(r#"{"name": "changed"}"#),
        )
        .await
        .assert_status(StatusCode::OK);
    }
}

#[sqlx::test]
async fn a_member_named_twice_is_400_keyed_or_not(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let body = r#"{"name": "a", "format": "postcard_a6", "content": "x", "name": "b"}"#;
    for key in [None, Some("dup-1")] {
        let mut request = app
            .request(Method::POST, "/v1/templates")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let problem = send(request)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "duplicate-member-name");
        assert!(
            problem["detail"].as_str().unwrap().contains("`name`"),
            "{problem}"
        );
    }
    let order = app.create_order().await;
    let nested = r#"{"recipient": {"name": "a", "city": "x", "city": "y"}}"#;
    send(
        app.request(Method::PATCH, &order_path(order.id()))
            .header(header::CONTENT_TYPE, "application/json")
            .body(nested),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "duplicate-member-name");
    assert_eq!(count(&app.pool, "templates").await, 1);
    assert_eq!(count(&app.pool, "idempotency_keys").await, 0);
}

#[sqlx::test]
async fn a_body_over_the_limit_is_413(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |config| config.request_body_limit_bytes = 64 * 1024).await;
    let body = json!({"name": "n", "format": "postcard_a6", "content": "a".repeat(100 * 1024)});
    let response = app.post("/v1/templates", &body).await;
    let problem = response.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    assert!(problem["detail"].as_str().unwrap().contains("65536"));

    // Without a Content-Length, the limit stops the body as it streams in.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(b"{\"content\": \"".to_vec()), Ok(vec![b'a'; 100 * 1024])];
    let stream = futures_util::stream::iter(chunks);
    let response = send(
        app.request(Method::POST, "/v1/templates")
            .header(header::CONTENT_TYPE, "application/json")
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    response.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    assert_eq!(count(&app.pool, "templates").await, 0);
}

#[sqlx::test]
async fn a_malformed_id_is_404_like_an_unknown_one(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    for path in [
        "/v1/orders/not-a-uuid",
        "/v1/templates/123",
        // Not UTF-8 once decoded.
        "/v1/orders/%FF",
        "/v1/templates/%C3%28",
        "/v1/orders/019ac9f1-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
    ] {
        app.get(path)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not-found");
        app.patch(path, &json!({}))
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not-found");
        app.delete(path)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not-found");
    }
}

#[sqlx::test]
async fn unknown_routes_and_methods_are_problems_too(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.get("/v1/invoices")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    let response = send(app.request(Method::PUT, "/v1/orders")).await;
    response.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
}

#[sqlx::test]
async fn problem_types_are_described(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let response = app.get("/problems/template-in-use").await;
    response.assert_status(StatusCode::OK);
    let description = response.json();
    assert_eq!(description["type"], "/problems/template-in-use");
    assert_eq!(description["status"], 409);
    assert!(
        description["description"]
            .as_str()
            .unwrap()
            .contains("orders")
    );
    app.get("/problems/no-such-problem")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
}

#[sqlx::test]
async fn nul_characters_are_rejected_where_postgresql_cannot_store_them(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let response = app
        .post(
            "/v1/templates",
            &json!({"name": "n", "format": "postcard_a6", "content": "a\u{0}b"}),
        )
        .await;
    assert_eq!(response.assert_invalid_fields(), ["content"]);
    let template = app.create_template("<p>{{name}}</p>").await;
    let body = json!({
        "template_id": template["id"],
        "recipient": crate::helpers::address(),
        "merge_variables": {"name": "nul\u{0}"}
    });
    assert_eq!(
        app.post("/v1/orders", &body).await.assert_invalid_fields(),
        ["merge_variables"]
    );
    let mut named = body.clone();
    named["merge_variables"] = json!({"name": "Anna"});
    named["recipient"]["name"] = json!("A\u{0}");
    assert_eq!(
        app.post("/v1/orders", &named).await.assert_invalid_fields(),
        ["recipient.name"]
    );
    assert_eq!(count(&app.pool, "orders").await, 0);
}

#[sqlx::test]
async fn every_problem_of_a_body_is_listed_in_one_422_in_document_order(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let errors = |response: crate::helpers::TestResponse| -> Vec<(String, String)> {
        let problem =
            response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
        problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["field"].as_str().unwrap().to_owned(),
                    e["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };

    // Missing members: every one of them.
    let missing = errors(app.post("/v1/templates", &json!({})).await);
    let fields: Vec<_> = missing.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["name", "format", "content"]);
    assert!(
        missing.iter().all(|(_, m)| m == "is required"),
        "{missing:?}"
    );

    // Wrong types, an unknown enum value, an unknown member and a broken rule, as they come in the document.
    let body = r#"{"content": 2, "nmae": "typo", "format": "zz", "name": 1}"#;
    let mixed = errors(
        send(
            app.request(Method::POST, "/v1/templates")
                .header(header::CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await,
    );
    let fields: Vec<_> = mixed.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["content", "nmae", "format", "name"]);
    assert_eq!(mixed[0].1, "must be a string, not a number");
    assert_eq!(
        mixed[1].1,
        "is not a known field; expected one of `name`, `format`, `content`, `metadata`"
    );
    assert!(
        mixed[2].1.starts_with("must be one of `postcard_a6`"),
        "{mixed:?}"
    );

    // Nested members: types, rules, unknown and missing members of an address, merge variables of the wrong type.
    let template = app.create_template("<p>Hi</p>").await;
    let body = json!({
        "template_id": template["id"],
        "send_date": 20261224,
        "recipient": {"name": "", "zip": "1015", "street": 5, "house_number": "1",
                      "postal_code": "1015 CJ", "city": "Amsterdam", "country": "XX"},
        "merge_variables": {"first_name": 7, "bad name": "x"},
        "colour": "red",
    });
    let nested = errors(app.post("/v1/orders", &body).await);
    let fields: Vec<_> = nested.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "send_date",
            "recipient.name",
            "recipient.zip",
            "recipient.street",
            "recipient.country",
            "merge_variables.first_name",
            "colour",
        ]
    );

    // A PATCH the same way: null where a value is needed, a wrong type, an unknown member.
    let order = app.create_order().await;
    let path = order_path(order.id());
    let patch = errors(
        app.patch(
            &path,
            &json!({"status": "sent", "recipient": null, "sender": {"name": "A"}, "send_date": false}),
        )
        .await,
    );
    let fields: Vec<_> = patch.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "status",
            "recipient",
            "sender.street",
            "sender.house_number",
            "sender.postal_code",
            "sender.city",
            "sender.country",
            "send_date",
        ]
    );

    // The members of template versions and metadata the same way: a re-pin and metadata of the wrong types.
    let body = r#"{"metadata": {"campaign": "winter", "customer_id": 4711}, "template_version": "2", "extra": 1}"#;
    let repin = errors(
        send(
            app.request(Method::PATCH, &path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await,
    );
    let fields: Vec<_> = repin.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        ["metadata.customer_id", "template_version", "extra"]
    );
    let body = r#"{"metadata": {"a[b]": "x", "k": "v"}, "template_version": 0}"#;
    let rules = errors(
        send(
            app.request(Method::PATCH, &path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await,
    );
    let fields: Vec<_> = rules.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["metadata.a[b]", "template_version"]);

    // A preview: merge variables and a version of the wrong types, and an unknown member.
    let preview = format!("/v1/templates/{}/render", template.id());
    let body = r#"{"merge_variables": {"first_name": 7}, "version": "latest", "colour": "red"}"#;
    let render = errors(
        send(
            app.request(Method::POST, &preview)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await,
    );
    let fields: Vec<_> = render.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["merge_variables.first_name", "version", "colour"]);
    let order = app.get(&path).await.json();
    assert_eq!(order["template_version"], 1);
    assert_eq!(order["metadata"], json!({}));
    assert_eq!(count(&app.pool, "orders").await, 1);
    assert_eq!(count(&app.pool, "templates").await, 2);
}

/// A write takes no query parameters: one sent anyway is a 422 naming it, and nothing runs or is stored.
#[sqlx::test]
async fn query_parameters_on_writes_are_422(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    let order_path = order_path(order.id());
    let template = json!({"name": "Dry", "format": "postcard_a6", "content": "<p>Hi</p>"});
    let templates_before = count(&app.pool, "templates").await;

    let dry_run = send(
        app.request(Method::POST, "/v1/templates?dry_run=true")
            .header("idempotency-key", "dry")
            .json(&template),
    )
    .await;
    assert_eq!(dry_run.assert_invalid_fields(), ["dry_run"]);
    let patch = send(
        app.request(Method::PATCH, &format!("{order_path}?notify=1&force"))
            .json(&json!({"send_date": null})),
    )
    .await;
    assert_eq!(patch.assert_invalid_fields(), ["notify", "force"]);
    let cancel = app.delete(&format!("{order_path}?reason=x")).await;
    assert_eq!(cancel.assert_invalid_fields(), ["reason"]);

    assert_eq!(count(&app.pool, "templates").await, templates_before);
    assert_eq!(count(&app.pool, "idempotency_keys").await, 0);
    assert_eq!(app.get(&order_path).await.json()["status"], "received");
    // The corrected request runs, with the same key.
    let corrected = app
        .keyed(Method::POST, "/v1/templates", "dry", &template)
        .await;
    corrected.assert_status(StatusCode::CREATED);
}

#[sqlx::test]
async fn invisible_format_characters_in_names_and_addresses_are_422(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    // A right-to-left override would print "Keizersgracht" reversed; the others hide in the text.
    let response = app
        .post(
            "/v1/templates",
            &json!({"name": "Welcome\u{FEFF}", "format": "postcard_a6", "content": "x"}),
        )
        .await;
    assert_eq!(response.assert_invalid_fields(), ["name"]);

    let template = app.create_template("<p>Hello</p>").await;
    let mut recipient = crate::helpers::address();
    recipient["name"] = json!("Anna de Vries\u{202E}");
    recipient["street"] = json!("Keizers\u{200B}gracht");
    recipient["city"] = json!("\u{2066}Amsterdam\u{2069}");
    let mut sender = crate::helpers::address();
    sender["company"] = json!("Acme\u{200D}Print");
    sender["postal_code"] = json!("1015\u{2060}CJ");
    let response = app
        .post(
            "/v1/orders",
            &json!({"template_id": template["id"], "recipient": recipient, "sender": sender}),
        )
        .await;
    let mut fields = response.assert_invalid_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "recipient.city",
            "recipient.name",
            "recipient.street",
            "sender.company",
            "sender.postal_code"
        ]
    );
    assert!(
        String::from_utf8_lossy(&response.body).contains("U+202E"),
        "the message names the character"
    );
    assert_eq!(count(&app.pool, "orders").await, 0);
}

/// Words of Rust and serde that mean nothing to a client speaking JSON.
const RUST_WORDS: &[&str] = &[
    "struct",
    "enum",
    "variant",
    "identifier",
    "map",
    "sequence",
    "tuple",
    "unit",
    "i8",
    "i16",
    "i32",
    "i64",
    "u8",
    "u16",
    "u32",
    "u64",
    "usize",
    "isize",
    "f32",
    "f64",
    "Input",
    "Option",
    "Vec",
    "Member",
    "Metadata",
    "MergeVariables",
    "TemplateFormat",
    "BTreeMap",
    "HashMap",
    "String",
    "char",
    "Value",
];

/// Whether `message` names a Rust type or serde's words for one.
fn speaks_rust(message: &str) -> Option<&'static str> {
    let words: Vec<&str> = message
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .collect();
    RUST_WORDS.iter().copied().find(|rust| words.contains(rust))
}

#[sqlx::test]
async fn no_message_about_a_wrong_type_names_a_rust_type(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>{{a}}</p>").await;
    let order = app.create_order().await;
    let wrong = [
        json!("Anna"),
        json!(5),
        json!(-1),
        json!(1.5),
        json!(true),
        json!([]),
        json!(["x"]),
        json!({}),
        json!({"x": 1}),
        json!(null),
        json!(99999999999u64),
    ];
    let address = crate::helpers::address();
    let mut bodies: Vec<(Method, String, serde_json::Value)> = Vec::new();
    let template_path = format!("/v1/templates/{}", template["id"].as_str().unwrap());
    let order_path = format!("/v1/orders/{}", order["id"].as_str().unwrap());
    let good_order =
        json!({"template_id": template["id"], "recipient": address, "merge_variables": {"a": "1"}});
    let writes = [
        (
            Method::POST,
            "/v1/templates".to_owned(),
            json!({"name": "n", "format": "letter_a4", "content": "x", "metadata": {}}),
        ),
        (
            Method::PATCH,
            template_path.clone(),
            json!({"name": "n", "format": "letter_a4", "content": "x", "metadata": {}}),
        ),
        (
            Method::POST,
            format!("{template_path}/render"),
            json!({"merge_variables": {"a": "1"}, "version": 1}),
        ),
        (Method::POST, "/v1/orders".to_owned(), good_order.clone()),
        (
            Method::PATCH,
            order_path,
            json!({"template_version": 1, "recipient": address, "sender": address,
            "merge_variables": {"a": "1"}, "send_date": "2099-01-01", "metadata": {}}),
        ),
        (
            Method::POST,
            "/v1/order_batches".to_owned(),
            json!({"template_id": template["id"], "key_from": ["metadata.k"],
            "orders": [good_order]}),
        ),
    ];
    for (method, path, body) in &writes {
        let members: Vec<Vec<&str>> = body
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(name, value)| {
                let mut paths = vec![vec![name.as_str()]];
                if let Some(inner) = value.as_object() {
                    paths.extend(
                        inner
                            .keys()
                            .map(|inner| vec![name.as_str(), inner.as_str()]),
                    );
                }
                paths
            })
            .collect();
        for member in members {
            for value in &wrong {
                let mut changed = body.clone();
                let mut slot = &mut changed;
                for name in &member {
                    slot = &mut slot[*name];
                }
                *slot = value.clone();
                bodies.push((method.clone(), path.clone(), changed));
            }
        }
    }
    // The rows of a batch, and the members of an address and of metadata.
    for value in &wrong {
        bodies.push((
            Method::POST,
            "/v1/order_batches".to_owned(),
            json!({"orders": [value]}),
        ));
        bodies.push((
            Method::POST,
            "/v1/order_batches".to_owned(),
            json!({"orders": value}),
        ));
        bodies.push((
            Method::POST,
            "/v1/orders".to_owned(),
            json!({"metadata": {"k": value}}),
        ));
    }
    let mut seen = 0;
    for (method, path, body) in bodies {
        let response = send(app.request(method.clone(), &path).json(&body)).await;
        if !response
            .header("content-type")
            .is_some_and(|t| t.contains("json"))
        {
            continue;
        }
        for problem in [response.json()].into_iter().chain(
            response.json()["results"]["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|row| row["error"].clone()),
        ) {
            for error in problem["errors"].as_array().into_iter().flatten() {
                let message = error["message"].as_str().unwrap();
                seen += 1;
                assert!(
                    speaks_rust(message).is_none(),
                    "{method} {path} {body}: {} {message}",
                    error["field"]
                );
            }
        }
    }
    assert!(seen > 500, "{seen} messages checked");
}

#[sqlx::test]
async fn an_unknown_member_lists_the_known_ones(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    let path = format!("/v1/orders/{}", order["id"].as_str().unwrap());
    let response = app.patch(&path, &json!({"status": "cancelled"})).await;
    let problem = response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    assert_eq!(problem["errors"][0]["field"], "status");
    assert_eq!(
        problem["errors"][0]["message"],
        "is not a known field; expected one of `template_version`, `recipient`, `sender`, \
         `merge_variables`, `send_date`, `metadata`"
    );
    let mut address = crate::helpers::address();
    address["zip"] = json!("1015");
    let response = app.patch(&path, &json!({"recipient": address})).await;
    let problem = response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    assert_eq!(problem["errors"][0]["field"], "recipient.zip");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .ends_with("`postal_code`, `city`, `country`"),
        "{problem}"
    );
}
