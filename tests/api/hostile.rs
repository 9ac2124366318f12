//! Hostile input (bad keys, broken, huge and slow bodies): its documented 4xx, nothing stored, the server still up.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use reqwest::{
    Method, StatusCode,
    header::{self, HeaderMap, HeaderName, HeaderValue},
};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, tcp::OwnedWriteHalf},
};

use crate::helpers::{Object, TestApp, TestResponse, count, order_for, send, template_path};

/// What a rejected request must leave as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    orders: i64,
    templates: i64,
    idempotency_keys: i64,
    /// The sum of the templates' versions, which a PATCH that got through would raise.
    template_versions: i64,
}

impl Stored {
    async fn now(pool: &PgPool) -> Self {
        Self {
            orders: count(pool, "orders").await,
            templates: count(pool, "templates").await,
            idempotency_keys: count(pool, "idempotency_keys").await,
            template_versions: sqlx::query_scalar(
                "SELECT coalesce(sum(version), 0)::bigint FROM templates",
            )
            .fetch_one(pool)
            .await
            .expect("template versions"),
        }
    }

    /// One more order, and one more key when the order came with one.
    fn plus_order(self, keyed: bool) -> Self {
        Self {
            orders: self.orders + 1,
            idempotency_keys: self.idempotency_keys + i64::from(keyed),
            ..self
        }
    }
}

#[track_caller]
fn assert_unchanged(now: Stored, before: Stored, case: &str) {
    assert_eq!(now, before, "something was stored for {case}");
}

/// The server still answers: liveness, and an authenticated read that needs the database.
async fn assert_still_serving(app: &TestApp) {
    app.get("/healthz").await.assert_status(StatusCode::OK);
    app.get("/v1/orders").await.assert_status(StatusCode::OK);
}

/// An order with a fresh key that must run (201, not a replay): the proof that a rejection stored nothing for it.
async fn assert_key_still_free(app: &TestApp, key: &str, template: &Value) {
    let retry = app
        .keyed(Method::POST, "/v1/orders", key, &order_for(template))
        .await;
    retry.assert_status(StatusCode::CREATED);
    assert_eq!(retry.header("idempotent-replayed"), None, "key {key:?}");
}

// 1. Idempotency-Key values

#[sqlx::test]
async fn every_kind_of_bad_key_is_400_and_stores_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let template_path = template_path(template.id());
    let before = Stored::now(&app.pool).await;

    let too_long = "k".repeat(256);
    let far_too_long = "k".repeat(10_000);
    let quoted_too_long = format!("\"{too_long}\"");
    let bad_keys: [(&str, &[u8]); 11] = [
        ("empty", b""),
        // The parser drops the spaces around a value, so this one arrives empty.
        ("only spaces", b"   "),
        ("256 characters", too_long.as_bytes()),
        ("10 000 characters", far_too_long.as_bytes()),
        ("a tab inside", b"tab\there"),
        ("UTF-8 \u{e9}", "caf\u{e9}".as_bytes()),
        ("raw 0xff", b"key\xff"),
        ("raw 0x80", b"\x80"),
        ("unclosed quote", b"\"abc"),
        ("escape that is not \\\" or \\\\", br#""a\nb""#),
        ("quoted 256 characters", quoted_too_long.as_bytes()),
    ];
    let targets = [
        (Method::POST, "/v1/orders", order_for(&template)),
        (
            Method::PATCH,
            template_path.as_str(),
            json!({"name": "Renamed"}),
        ),
    ];
    for (method, path, body) in &targets {
        for (case, key) in bad_keys {
            let response = send(
                app.request(method.clone(), path)
                    .header("idempotency-key", HeaderValue::from_bytes(key).unwrap())
                    .json(body),
            )
            .await;
            let problem =
                response.assert_problem(StatusCode::BAD_REQUEST, "invalid-idempotency-key");
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("Invalid Idempotency-Key: "),
                "{case}: {problem}"
            );
            assert_unchanged(Stored::now(&app.pool).await, before, case);
        }

        // Sent twice, with different values or the same one: which would be the key is not for the server to guess.
        for (first, second) in [("a", "b"), ("same", "same")] {
            let response = send(
                app.request(method.clone(), path)
                    .header("idempotency-key", first)
                    .header("idempotency-key", second)
                    .json(body),
            )
            .await;
            let problem =
                response.assert_problem(StatusCode::BAD_REQUEST, "invalid-idempotency-key");
            assert!(
                problem["detail"].as_str().unwrap().contains("once"),
                "{problem}"
            );
            assert_unchanged(Stored::now(&app.pool).await, before, "the header twice");
        }
    }
    assert_eq!(app.get(&template_path).await.json()["name"], "Welcome");

    // 255 characters is a key.
    assert_key_still_free(&app, &"k".repeat(255), &template).await;
    assert_eq!(Stored::now(&app.pool).await, before.plus_order(true));
    assert_still_serving(&app).await;
}

/// Bytes that reqwest refuses to put in a header value travel over a raw connection.
///
/// DEL, NUL and the other control bytes except tab are not allowed in a field value (RFC 9110, 5.5), and a CR or LF
/// would end the field. hyper's parser rejects such a request head before the service sees it and answers a bare
/// 400 itself, with no body (not problem+json) and `connection: close`; the service has no say in it.
#[sqlx::test]
async fn control_bytes_in_a_key_get_hypers_bare_400_and_the_server_carries_on(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let body = serde_json::to_vec(&order_for(&template)).unwrap();
    let before = Stored::now(&app.pool).await;

    let keys: [(&str, &[u8]); 6] = [
        ("0x01", b"key\x01"),
        ("DEL 0x7f", b"key\x7f"),
        ("NUL", b"a\x00b"),
        ("a bare CR", b"a\rb"),
        ("a bare LF", b"a\nb"),
        ("ESC", b"\x1b[31m"),
    ];
    for (case, key) in keys {
        let mut request = request_head(
            &app,
            "POST",
            "/v1/orders",
            &[
                ("content-type", b"application/json"),
                ("idempotency-key", key),
                ("content-length", body.len().to_string().as_bytes()),
            ],
        );
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(&body);
        let response = exchange(app.addr, vec![Step::Bytes(request)], SECONDS_5)
            .await
            .answer(case);
        assert_bare_400(&response, case);
        assert_unchanged(Stored::now(&app.pool).await, before, case);
        assert_still_serving(&app).await;
    }
    assert_key_still_free(&app, "key", &template).await;
}

/// hyper's own answer to a request head it cannot parse: 400, no body, and the connection closes.
#[track_caller]
fn assert_bare_400(response: &TestResponse, case: &str) {
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{case}: {response:?}"
    );
    assert!(response.body.is_empty(), "{case}: {response:?}");
    assert_eq!(response.header("connection"), Some("close"), "{case}");
}

// 2. Bodies

/// A body the API must refuse, and how.
struct HostileBody {
    case: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    slug: &'static str,
}

fn hostile_bodies(template: &Value) -> Vec<HostileBody> {
    let id = template.id();
    // An order whose recipient has this raw JSON as the value of `member`.
    let recipient_with = |member: &str, raw: &str| {
        let recipient = [
            ("name", r#""Anna""#),
            ("street", r#""Keizersgracht""#),
            ("house_number", r#""1""#),
            ("postal_code", r#""1015 CJ""#),
            ("city", r#""Amsterdam""#),
            ("country", r#""NL""#),
        ]
        .map(|(name, value)| format!(r#""{name}": {}"#, if name == member { raw } else { value }))
        .join(", ");
        format!(r#"{{"template_id": "{id}", "recipient": {{{recipient}}}}}"#)
    };
    let valid = serde_json::to_vec(&order_for(template)).unwrap();
    let json = Some("application/json");
    let malformed = |case, body: Vec<u8>| HostileBody {
        case,
        content_type: json,
        body,
        status: StatusCode::BAD_REQUEST,
        slug: "malformed-json",
    };
    let depth = 100_000;
    let mut invalid_utf8 =
        format!(r#"{{"template_id": "{id}", "recipient": {{"name": ""#).into_bytes();
    invalid_utf8.extend_from_slice(b"\xff\xfe\xc3\x28");
    invalid_utf8.extend_from_slice(br#""}}"#);
    let mut bodies = vec![
        malformed("truncated JSON", valid[..valid.len() / 2].to_vec()),
        malformed("an empty body", Vec::new()),
        malformed(
            "100 000 nested arrays",
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes(),
        ),
        malformed(
            "100 000 unclosed arrays",
            "[".repeat(depth).into_bytes(),
        ),
        malformed(
            "100 000 nested objects",
            format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth)).into_bytes(),
        ),
        malformed("invalid UTF-8 in a string", invalid_utf8),
        malformed(
            "a lone surrogate escape",
            recipient_with("name", r#""\ud800""#).into_bytes(),
        ),
        malformed(
            "1e999999 for a string",
            recipient_with("house_number", "1e999999").into_bytes(),
        ),
        malformed(
            "-1e999999 for a string",
            recipient_with("house_number", "-1e999999").into_bytes(),
        ),
        malformed(
            "a 10 000-digit integer for a string",
            recipient_with("postal_code", &"9".repeat(10_000)).into_bytes(),
        ),
        malformed("NaN", recipient_with("city", "NaN").into_bytes()),
        HostileBody {
            // It fits a double, so it parses; then it is a number where a string belongs.
            case: "a 300-digit integer for a string",
            content_type: json,
            body: recipient_with("postal_code", &"9".repeat(300)).into_bytes(),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            slug: "validation-failed",
        },
        HostileBody {
            // Nesting the parser accepts must not trouble the fingerprint or the deserializer either.
            case: "a merge variable nested 120 deep",
            content_type: json,
            body: format!(
                r#"{{"template_id": "{id}", "recipient": {{"name": "Anna", "street": "S", "house_number": "1", "postal_code": "P", "city": "C", "country": "NL"}}, "merge_variables": {{"a": {}1{}}}}}"#,
                "[".repeat(120),
                "]".repeat(120)
            )
            .into_bytes(),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            slug: "validation-failed",
        },
    ];
    for (case, content_type) in [
        ("text/plain", Some("text/plain")),
        (
            "application/x-www-form-urlencoded",
            Some("application/x-www-form-urlencoded"),
        ),
        ("no Content-Type", None),
        ("application/jsonx", Some("application/jsonx")),
    ] {
        bodies.push(HostileBody {
            case,
            content_type,
            body: valid.clone(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            slug: "unsupported-media-type",
        });
    }
    bodies
}

#[sqlx::test]
async fn hostile_bodies_get_their_status_with_and_without_a_key(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let mut before = Stored::now(&app.pool).await;
    for (i, hostile) in hostile_bodies(&template).into_iter().enumerate() {
        let key = format!("hostile-body-{i}");
        for key in [None, Some(key.as_str())] {
            let mut request = app
                .request(Method::POST, "/v1/orders")
                .body(hostile.body.clone());
            if let Some(content_type) = hostile.content_type {
                request = request.header(header::CONTENT_TYPE, content_type);
            }
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            let response = send(request).await;
            assert_eq!(
                response.status,
                hostile.status,
                "{} (key {key:?}): {}",
                hostile.case,
                String::from_utf8_lossy(&response.body)
            );
            response.assert_problem(hostile.status, hostile.slug);
            assert_unchanged(Stored::now(&app.pool).await, before, hostile.case);
        }
        // Rejections are not stored, so the same key with a correct body runs.
        assert_key_still_free(&app, &key, &template).await;
        before = before.plus_order(true);
        assert_eq!(Stored::now(&app.pool).await, before, "{}", hostile.case);
    }
    assert_still_serving(&app).await;
}

/// A malformed chunked body, and a body cut short by a client that half-closes, cannot be read to their end.
#[sqlx::test]
async fn a_body_that_cannot_be_read_to_its_end_is_400(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let before = Stored::now(&app.pool).await;
    for key in [None, Some(&b"unreadable"[..])] {
        let framing: [(&str, Fields, &[u8], bool); 2] = [
            (
                "a malformed chunk size",
                &[("transfer-encoding", b"chunked")],
                b"5\r\n{\"tem\r\nzz\r\nplate\r\n0\r\n\r\n",
                false,
            ),
            // hyper still answers a client that shut its sending side after 15 of 100 bytes.
            (
                "a half-close after 15 of 100 bytes",
                &[("content-length", b"100")],
                b"{\"template_id\"",
                true,
            ),
        ];
        for (case, fields, body, half_close) in framing {
            let mut fields = fields.to_vec();
            fields.push(("content-type", b"application/json"));
            fields.extend(key.map(|key| ("idempotency-key", key)));
            let mut request = request_head(&app, "POST", "/v1/orders", &fields);
            request.extend_from_slice(b"\r\n");
            request.extend_from_slice(body);
            let mut steps = vec![Step::Bytes(request)];
            if half_close {
                steps.push(Step::CloseWrite);
            }
            let response = exchange(app.addr, steps, SECONDS_5).await.answer(case);
            response.assert_problem(StatusCode::BAD_REQUEST, "unreadable-body");
            assert_unchanged(Stored::now(&app.pool).await, before, case);
        }
    }
    assert_key_still_free(&app, "unreadable", &template).await;
    assert_still_serving(&app).await;
}

/// Framing that hyper refuses before the service sees the request, and framing that contradicts itself.
///
/// Like the control bytes above, what hyper refuses gets its bare 400. With both `Content-Length` and
/// `Transfer-Encoding: chunked`, chunked wins (RFC 9112, 6.3), so a body that is not chunked cannot be read: a
/// smuggled request never reaches a handler.
#[sqlx::test]
async fn broken_framing_is_400_and_nothing_runs(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let body = serde_json::to_vec(&order_for(&template)).unwrap();
    let length = body.len().to_string();
    let length_list = format!("{length}, 5");
    let before = Stored::now(&app.pool).await;
    let bare: [(&str, Fields); 7] = [
        ("Content-Length: abc", &[("content-length", b"abc")]),
        ("Content-Length: -1", &[("content-length", b"-1")]),
        (
            "Content-Length: 2^64",
            &[("content-length", b"18446744073709551616")],
        ),
        (
            "two Content-Lengths",
            &[
                ("content-length", length.as_bytes()),
                ("content-length", b"5"),
            ],
        ),
        (
            "a list of Content-Lengths",
            &[("content-length", length_list.as_bytes())],
        ),
        ("Transfer-Encoding: gzip", &[("transfer-encoding", b"gzip")]),
        (
            "chunked, then gzip",
            &[("transfer-encoding", b"chunked, gzip")],
        ),
    ];
    let smuggled: (&str, Fields) = (
        "Content-Length and Transfer-Encoding",
        &[
            ("content-length", length.as_bytes()),
            ("transfer-encoding", b"chunked"),
        ],
    );
    for (case, fields) in bare.into_iter().chain([smuggled]) {
        let mut fields = fields.to_vec();
        fields.push(("content-type", b"application/json"));
        let mut request = request_head(&app, "POST", "/v1/orders", &fields);
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(&body);
        let response = exchange(app.addr, vec![Step::Bytes(request)], SECONDS_5)
            .await
            .answer(case);
        if case == smuggled.0 {
            response.assert_problem(StatusCode::BAD_REQUEST, "unreadable-body");
        } else {
            assert_bare_400(&response, case);
        }
        assert_unchanged(Stored::now(&app.pool).await, before, case);
    }
    assert_still_serving(&app).await;
}

const TEN_MB: usize = 10 * 1024 * 1024;

/// A request of `len` bytes of body, announced with `Content-Length` or sent chunked without it.
fn oversized_request(app: &TestApp, key: Option<&str>, len: usize, chunked: bool) -> Vec<Step> {
    let length = len.to_string();
    let mut fields: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
    if chunked {
        fields.push(("transfer-encoding", b"chunked"));
    } else {
        fields.push(("content-length", length.as_bytes()));
    }
    fields.extend(key.map(|key| ("idempotency-key", key.as_bytes())));
    let mut head = request_head(app, "POST", "/v1/orders", &fields);
    head.extend_from_slice(b"\r\n");
    vec![Step::Bytes(head), Step::Filler { len, chunked }]
}

/// The server may answer 413 before the body is through; the client reads the answer while it still writes.
#[sqlx::test]
async fn a_10_mb_body_is_413_with_or_without_a_content_length(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let before = Stored::now(&app.pool).await;
    for chunked in [false, true] {
        for key in [None, Some("too-large")] {
            let case = format!("10 MB, chunked: {chunked}, key: {key:?}");
            let started = Instant::now();
            let response = exchange(
                app.addr,
                oversized_request(&app, key, TEN_MB, chunked),
                SECONDS_5,
            )
            .await
            .answer(&case);
            let problem =
                response.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
            assert!(
                problem["detail"].as_str().unwrap().contains("1048576"),
                "{problem}"
            );
            assert!(started.elapsed() < Duration::from_secs(3), "{case}");
            assert_unchanged(Stored::now(&app.pool).await, before, &case);
        }
    }
    assert_key_still_free(&app, "too-large", &template).await;
    assert_still_serving(&app).await;
}

/// The same through reqwest, which sends the body from memory: the 413 reaches it too.
#[sqlx::test]
async fn reqwest_gets_the_413_of_a_10_mb_body(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let before = Stored::now(&app.pool).await;
    let body = axum::body::Bytes::from(vec![b' '; TEN_MB]);
    let response = send(
        app.request(Method::POST, "/v1/orders")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.clone()),
    )
    .await;
    response.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    let chunks = (0..TEN_MB / (64 * 1024))
        .map(|_| Ok::<_, std::io::Error>(body.slice(..64 * 1024)))
        .collect::<Vec<_>>();
    let response = send(
        app.request(Method::POST, "/v1/orders")
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", "streamed")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            ))),
    )
    .await;
    response.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    assert_unchanged(
        Stored::now(&app.pool).await,
        before,
        "10 MB through reqwest",
    );
    assert_still_serving(&app).await;
}

// 3. Slow senders

/// A body that stops coming: the whole-request timeout answers 408, and the request never ran.
#[sqlx::test]
async fn a_body_sent_too_slowly_is_408_and_stores_nothing(pool: PgPool) {
    let timeout = Duration::from_secs(1);
    let app = TestApp::spawn_with(pool, |config| config.request_timeout = timeout).await;
    let template = app.create_template("<p>Hi</p>").await;
    let before = Stored::now(&app.pool).await;
    let stalls = |key: Option<&'static [u8]>, trickle: bool| {
        let mut fields: Vec<(&str, &[u8])> = vec![
            ("content-type", b"application/json"),
            ("content-length", b"100"),
        ];
        fields.extend(key.map(|key| ("idempotency-key", key)));
        let mut head = request_head(&app, "POST", "/v1/orders", &fields);
        head.extend_from_slice(b"\r\n{\"template_id\": ");
        let mut steps = vec![Step::Bytes(head)];
        if trickle {
            // A byte now and then resets no clock: the timeout bounds the whole request.
            for _ in 0..20 {
                steps.push(Step::Pause(Duration::from_millis(100)));
                steps.push(Step::Bytes(b" ".to_vec()));
            }
        }
        steps
    };
    let cases = [
        ("stalled, no key", stalls(None, false)),
        ("stalled, keyed", stalls(Some(b"slow-1"), false)),
        ("trickled, keyed", stalls(Some(b"slow-2"), true)),
    ];
    // In parallel, so that the test waits for the timeout once.
    let addr = app.addr;
    let endings =
        futures_util::future::join_all(cases.into_iter().map(|(case, steps)| async move {
            let started = Instant::now();
            let ending = exchange(addr, steps, SECONDS_5).await;
            (case, started.elapsed(), ending)
        }))
        .await;
    for (case, elapsed, ending) in endings {
        let response = ending.answer(case);
        let problem = response.assert_problem(StatusCode::REQUEST_TIMEOUT, "request-timeout");
        assert!(
            problem["detail"].as_str().unwrap().contains("1 seconds"),
            "{problem}"
        );
        assert!(
            elapsed >= timeout && elapsed < timeout * 3,
            "{case}: answered after {elapsed:?}"
        );
    }
    assert_unchanged(Stored::now(&app.pool).await, before, "a slow body");
    assert_key_still_free(&app, "slow-1", &template).await;
    assert_key_still_free(&app, "slow-2", &template).await;
    assert_still_serving(&app).await;
}

/// A request head that never ends holds its connection, but no worker and no other client.
#[sqlx::test]
async fn a_head_that_never_ends_does_not_stop_other_clients(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |config| {
        config.request_timeout = Duration::from_secs(1)
    })
    .await;
    let template = app.create_template("<p>Hi</p>").await;
    let partial = request_head(
        &app,
        "POST",
        "/v1/orders",
        &[("content-type", b"application/json")],
    );
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(app.addr).await.expect("connect");
        stream.write_all(&partial).await.expect("partial head");
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    app.post("/v1/orders", &order_for(&template))
        .await
        .assert_status(StatusCode::CREATED);
    assert_still_serving(&app).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(count(&app.pool, "orders").await, 1);
}

/// A head that never ends (slowloris) is bounded too: hyper's header read timeout, set to the request timeout by
/// `serve`, closes the connection; the request timeout itself only starts once a head is complete.
#[sqlx::test]
async fn a_head_that_never_ends_is_closed_within_the_request_timeout(pool: PgPool) {
    let timeout = Duration::from_secs(1);
    let app = TestApp::spawn_with(pool, |config| config.request_timeout = timeout).await;
    let partial = request_head(
        &app,
        "POST",
        "/v1/orders",
        &[("content-type", b"application/json")],
    );
    let ending = exchange(app.addr, vec![Step::Bytes(partial)], timeout * 4).await;
    match ending {
        Ending::Closed => {}
        Ending::Answer(response) => response.assert_status(StatusCode::REQUEST_TIMEOUT),
        Ending::Open => panic!("the connection is still open after {:?}", timeout * 4),
    }
}

// 4. Bounded memory

/// A memory figure of this process, which serves the app in-process, in bytes: `VmRSS` (resident now) or
/// `VmHWM` (the peak of resident).
fn memory(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in kB"));
    kib * 1024
}

#[sqlx::test]
async fn fifty_rejected_10_mb_bodies_leave_memory_bounded(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let before = Stored::now(&app.pool).await;
    let send_batch = |round: usize| {
        let app = &app;
        futures_util::future::join_all((0..5).map(move |i| async move {
            let n = round * 5 + i;
            let key = format!("memory-{n}");
            let key = (n % 4 >= 2).then_some(key.as_str());
            let steps = oversized_request(app, key, TEN_MB, n % 2 == 1);
            exchange(app.addr, steps, SECONDS_5)
                .await
                .answer("10 MB")
                .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
        }))
    };
    // Warm up buffers and pools first, so that only growth from the 10 MB bodies counts.
    send_batch(0).await;
    let (resident, peak) = (memory("VmRSS"), memory("VmHWM"));
    let started = Instant::now();
    for round in 0..10 {
        send_batch(round).await;
    }
    const MIB: u64 = 1024 * 1024;
    let grown = memory("VmRSS").saturating_sub(resident);
    let peak_grown = memory("VmHWM").saturating_sub(peak);
    // Other tests share this process, hence the generous bound: unbounded buffering would take 500 MB.
    assert!(
        grown < 100 * MIB && peak_grown < 100 * MIB,
        "50 rejected 10 MB bodies grew the resident memory by {} MiB, its peak by {} MiB",
        grown / MIB,
        peak_grown / MIB
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_unchanged(Stored::now(&app.pool).await, before, "10 MB bodies");
    assert_still_serving(&app).await;
}

// Raw HTTP/1.1, for what reqwest will not send, or not that slowly.

const SECONDS_5: Duration = Duration::from_secs(5);

/// Header fields: names and raw values.
type Fields<'a> = &'a [(&'a str, &'a [u8])];

/// A request head of the default account with these extra fields, without the blank line that ends it.
fn request_head(app: &TestApp, method: &str, path: &str, fields: Fields) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\nconnection: close\r\n",
        app.addr, app.api_key
    )
    .into_bytes();
    for (name, value) in fields {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head
}

/// What the client does on the wire, in order.
enum Step {
    Bytes(Vec<u8>),
    /// `len` bytes of a JSON string that never ends, as they are or in 64 KiB chunks.
    Filler {
        len: usize,
        chunked: bool,
    },
    Pause(Duration),
    /// Shut the client's sending side (a half-close).
    CloseWrite,
}

/// How a raw exchange ended.
#[derive(Debug)]
enum Ending {
    Answer(TestResponse),
    /// The server closed the connection without an answer.
    Closed,
    /// No answer within the deadline, and the connection is still open.
    Open,
}

impl Ending {
    #[track_caller]
    fn answer(self, case: &str) -> TestResponse {
        match self {
            Self::Answer(response) => response,
            other => panic!("{case}: no answer: {other:?}"),
        }
    }
}

/// Runs `steps` on a new connection while reading the answer, as a client must when the server may answer before
/// the body is through (a 413 or 408); writes that fail after that are the server's right and are ignored.
async fn exchange(addr: SocketAddr, steps: Vec<Step>, deadline: Duration) -> Ending {
    let (mut reader, writer) = TcpStream::connect(addr)
        .await
        .expect("connect")
        .into_split();
    let writing = tokio::spawn(write_steps(writer, steps));
    let ending = tokio::time::timeout(deadline, read_response(&mut reader))
        .await
        .unwrap_or(Ending::Open);
    writing.abort();
    ending
}

async fn write_steps(mut writer: OwnedWriteHalf, steps: Vec<Step>) {
    for step in steps {
        let written = match step {
            Step::Bytes(bytes) => writer.write_all(&bytes).await,
            Step::Filler { len, chunked } => {
                let mut result = Ok(());
                for piece in filler(len) {
                    result = if chunked {
                        write_chunk(&mut writer, piece).await
                    } else {
                        writer.write_all(piece).await
                    };
                    if result.is_err() {
                        break;
                    }
                }
                if chunked && result.is_ok() {
                    result = writer.write_all(b"0\r\n\r\n").await;
                }
                result
            }
            Step::Pause(pause) => {
                tokio::time::sleep(pause).await;
                Ok(())
            }
            Step::CloseWrite => writer.shutdown().await,
        };
        if written.is_err() {
            return;
        }
    }
    // Hold the connection open until the exchange is over.
    std::future::pending::<()>().await;
}

/// `len` bytes of a JSON string that never ends, in pieces of at most 64 KiB.
fn filler(len: usize) -> impl Iterator<Item = &'static [u8]> {
    const START: &[u8] = b"{\"content\": \"";
    static FILLER: [u8; 64 * 1024] = [b'a'; 64 * 1024];
    let mut left = len.saturating_sub(START.len());
    std::iter::once(START).chain(std::iter::from_fn(move || {
        let piece = &FILLER[..left.min(FILLER.len())];
        left -= piece.len();
        (!piece.is_empty()).then_some(piece)
    }))
}

async fn write_chunk(writer: &mut OwnedWriteHalf, chunk: &[u8]) -> std::io::Result<()> {
    writer
        .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
        .await?;
    writer.write_all(chunk).await?;
    writer.write_all(b"\r\n").await
}

/// Reads one response: its head, then `Content-Length` bytes of body, or everything until the server closes.
async fn read_response(reader: &mut (impl AsyncRead + Unpin)) -> Ending {
    let mut received = Vec::new();
    let mut buffer = [0; 8192];
    loop {
        let closed = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => true,
            Ok(n) => {
                received.extend_from_slice(&buffer[..n]);
                false
            }
        };
        if let Some(response) = parse_response(&received, closed) {
            return Ending::Answer(response);
        }
        if closed {
            assert!(
                received.is_empty(),
                "a partial response: {:?}",
                String::from_utf8_lossy(&received)
            );
            return Ending::Closed;
        }
    }
}

/// A complete response in `received`, if there is one yet.
fn parse_response(received: &[u8], closed: bool) -> Option<TestResponse> {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&received[..end]).expect("an ASCII response head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').expect("a header field");
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).expect("a field name"),
            HeaderValue::from_str(value.trim()).expect("a field value"),
        );
    }
    let body = &received[end + 4..];
    let length = headers
        .get(header::CONTENT_LENGTH)
        .map(|length| length.to_str().unwrap().parse::<usize>().unwrap());
    let complete = match length {
        Some(length) => body.len() >= length,
        None => closed,
    };
    complete.then(|| TestResponse {
        status: StatusCode::from_u16(status).expect("a status"),
        headers,
        body: body[..length.unwrap_or(body.len())].to_vec(),
    })
}
