//! Orders: take, read, update while received, cancel, and every field rule.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::helpers::{Object, TestApp, address, count, order_path};

fn today() -> time::Date {
    OffsetDateTime::now_utc().date()
}

fn day(offset: i64) -> String {
    (today() + time::Duration::days(offset)).to_string()
}

fn with(mut value: Value, key: &str, member: Value) -> Value {
    value[key] = member;
    value
}

#[sqlx::test]
async fn create_takes_the_order_with_its_template_version(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app
        .create_template("<p>Hi {{first_name}} from {{city}}</p>")
        .await;
    let sender = with(address(), "company", json!("Print Co."));
    let response = app
        .post(
            "/v1/orders",
            &json!({
                "template_id": template["id"],
                "recipient": address(),
                "sender": sender,
                "merge_variables": {"first_name": "Anna", "city": "Utrecht", "unused": "fine"},
                "send_date": day(0),
            }),
        )
        .await;
    response.assert_status(StatusCode::CREATED);
    let order = response.json();
    let id = order.id();
    assert_eq!(response.header("location"), Some(order_path(id).as_str()));
    assert_eq!(order["template_id"], template["id"]);
    assert_eq!(order["template_version"], 1);
    assert_eq!(order["status"], "received");
    assert_eq!(order["recipient"], with(address(), "company", Value::Null));
    assert_eq!(order["sender"], sender);
    assert_eq!(order["merge_variables"]["city"], "Utrecht");
    assert_eq!(order["send_date"], day(0));
    assert_eq!(app.get(&order_path(id)).await.json(), order);
}

#[sqlx::test]
async fn optional_members_may_be_left_out(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    assert_eq!(order["sender"], Value::Null);
    assert_eq!(order["send_date"], Value::Null);
    assert_eq!(order["merge_variables"], json!({}));
}

#[sqlx::test]
async fn the_template_must_exist_in_the_callers_account(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let other = app.other_account().await;
    let theirs = other.create_template("<p>Hi</p>").await;
    for template_id in [theirs["id"].clone(), json!(uuid::Uuid::now_v7())] {
        let response = app
            .post(
                "/v1/orders",
                &json!({"template_id": template_id, "recipient": address()}),
            )
            .await;
        let problem =
            response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "template-not-found");
        assert_eq!(problem["errors"][0]["field"], "template_id");
    }
    assert_eq!(count(&app.pool, "orders").await, 0);
}

#[sqlx::test]
async fn every_merge_field_must_be_supplied(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app
        .create_template("{{first_name}} {{last_name}} {{city}}")
        .await;
    let response = app
        .post(
            "/v1/orders",
            &json!({"template_id": template["id"], "recipient": address(), "merge_variables": {"city": "Delft"}}),
        )
        .await;
    let problem =
        response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "missing-merge-variables");
    let fields: Vec<_> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].clone())
        .collect();
    assert_eq!(
        fields,
        [
            json!("merge_variables.first_name"),
            json!("merge_variables.last_name")
        ]
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("first_name, last_name")
    );
    assert_eq!(count(&app.pool, "orders").await, 0);
}

#[sqlx::test]
async fn every_field_rule_is_reported_and_nothing_is_written(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>Hi</p>").await;
    let valid = json!({"template_id": template["id"], "recipient": address()});
    let address_with =
        |key: &str, member: Value| with(valid.clone(), "recipient", with(address(), key, member));
    let cases = [
        (address_with("name", json!("")), vec!["recipient.name"]),
        (
            address_with("name", json!("n".repeat(201))),
            vec!["recipient.name"],
        ),
        (
            address_with("company", json!("")),
            vec!["recipient.company"],
        ),
        (
            address_with("street", json!("s".repeat(201))),
            vec!["recipient.street"],
        ),
        (
            address_with("house_number", json!("1".repeat(21))),
            vec!["recipient.house_number"],
        ),
        (
            address_with("postal_code", json!("")),
            vec!["recipient.postal_code"],
        ),
        (
            address_with("postal_code", json!("1".repeat(21))),
            vec!["recipient.postal_code"],
        ),
        (
            address_with("city", json!("c".repeat(101))),
            vec!["recipient.city"],
        ),
        (
            address_with("city", json!("Line\nbreak")),
            vec!["recipient.city"],
        ),
        (
            address_with("country", json!("nl")),
            vec!["recipient.country"],
        ),
        (
            address_with("country", json!("XX")),
            vec!["recipient.country"],
        ),
        (
            address_with("country", json!("NLD")),
            vec!["recipient.country"],
        ),
        (address_with("zip", json!("1234")), vec!["recipient.zip"]),
        (address_with("city", json!(12)), vec!["recipient.city"]),
        (
            with(valid.clone(), "recipient", json!({"name": "Anna"})),
            vec![
                "recipient.street",
                "recipient.house_number",
                "recipient.postal_code",
                "recipient.city",
                "recipient.country",
            ],
        ),
        (
            with(
                valid.clone(),
                "sender",
                with(with(address(), "name", json!("")), "country", json!("ZZ")),
            ),
            vec!["sender.name", "sender.country"],
        ),
        (
            with(valid.clone(), "send_date", json!(day(-1))),
            vec!["send_date"],
        ),
        (
            with(valid.clone(), "send_date", json!("tomorrow")),
            vec!["send_date"],
        ),
        (
            with(valid.clone(), "merge_variables", json!({"n": 1})),
            vec!["merge_variables.n"],
        ),
        (
            with(valid.clone(), "merge_variables", json!({"bad name": "x"})),
            vec!["merge_variables"],
        ),
        (
            with(valid.clone(), "merge_variables", json!(["a"])),
            vec!["merge_variables"],
        ),
        (
            with(valid.clone(), "template_id", json!("not-a-uuid")),
            vec!["template_id"],
        ),
        (json!({"recipient": address()}), vec!["template_id"]),
        (with(valid.clone(), "status", json!("sent")), vec!["status"]),
    ];
    for (body, fields) in cases {
        let response = app.post("/v1/orders", &body).await;
        assert_eq!(response.assert_invalid_fields(), fields, "body: {body}");
    }
    assert_eq!(count(&app.pool, "orders").await, 0);
}

#[sqlx::test]
async fn patch_changes_a_received_order(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>{{first_name}}</p>").await;
    let created = app
        .post(
            "/v1/orders",
            &json!({"template_id": template["id"], "recipient": address(), "sender": address(),
                    "merge_variables": {"first_name": "Anna"}, "send_date": day(3)}),
        )
        .await
        .json();
    let path = order_path(created.id());

    let response = app
        .patch(
            &path,
            &json!({"recipient": with(address(), "city", json!("Rotterdam")), "sender": null,
                    "send_date": day(7), "merge_variables": {"first_name": "Bea"}}),
        )
        .await;
    response.assert_status(StatusCode::OK);
    let updated = response.json();
    assert_eq!(updated["recipient"]["city"], "Rotterdam");
    assert_eq!(updated["sender"], Value::Null);
    assert_eq!(updated["send_date"], day(7));
    assert_eq!(updated["merge_variables"], json!({"first_name": "Bea"}));
    assert_eq!(updated["created_at"], created["created_at"]);
    assert_eq!(app.get(&path).await.json(), updated);

    let cleared = app.patch(&path, &json!({"send_date": null})).await.json();
    assert_eq!(cleared["send_date"], Value::Null);
    assert_eq!(cleared["recipient"]["city"], "Rotterdam");
}

#[sqlx::test]
async fn patch_validates_like_create_and_writes_nothing_invalid(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let template = app.create_template("<p>{{first_name}}</p>").await;
    let created = app
        .post(
            "/v1/orders",
            &json!({"template_id": template["id"], "recipient": address(), "merge_variables": {"first_name": "Anna"}}),
        )
        .await
        .json();
    let path = order_path(created.id());
    let fields = app
        .patch(
            &path,
            &json!({"recipient": null, "send_date": day(-1), "status": "sent"}),
        )
        .await
        .assert_invalid_fields();
    // An unknown member is listed with the other problems, in the order of the document.
    assert_eq!(fields, ["recipient", "send_date", "status"]);
    let fields = app
        .patch(
            &path,
            &json!({"recipient": null, "send_date": day(-1), "merge_variables": null}),
        )
        .await
        .assert_invalid_fields();
    // In the order of the document.
    assert_eq!(fields, ["recipient", "send_date", "merge_variables"]);
    let problem = app
        .patch(&path, &json!({"merge_variables": {"last_name": "x"}}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "missing-merge-variables");
    assert_eq!(problem["errors"][0]["field"], "merge_variables.first_name");
    assert_eq!(app.get(&path).await.json(), created);
}

#[sqlx::test]
async fn cancel_is_final_and_repeatable(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    let path = order_path(order.id());

    let first = app.delete(&path).await;
    first.assert_status(StatusCode::OK);
    assert_eq!(first.json()["status"], "cancelled");
    let second = app.delete(&path).await;
    second.assert_status(StatusCode::OK);
    assert_eq!(second.body, first.body);

    let problem = app
        .patch(&path, &json!({"send_date": day(1)}))
        .await
        .assert_problem(StatusCode::CONFLICT, "order-not-modifiable");
    assert!(problem["detail"].as_str().unwrap().contains("cancelled"));
    assert_eq!(app.get(&path).await.json(), first.json());
}

#[sqlx::test]
async fn orders_being_processed_cannot_be_changed_or_cancelled(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    let id = order.uuid();
    sqlx::query("UPDATE orders SET status = 'processing' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let path = order_path(order.id());
    app.delete(&path)
        .await
        .assert_problem(StatusCode::CONFLICT, "order-not-modifiable");
    app.patch(&path, &json!({"sender": null}))
        .await
        .assert_problem(StatusCode::CONFLICT, "order-not-modifiable");
    assert_eq!(app.get(&path).await.json()["status"], "processing");
}

#[sqlx::test]
async fn the_database_rejects_invalid_rows_that_skip_the_api(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let order = app.create_order().await;
    let id: uuid::Uuid = order.uuid();
    let statements = [
        "UPDATE orders SET recipient = recipient - 'city' WHERE id = $1",
        "UPDATE orders SET recipient = jsonb_set(recipient, '{country}', '\"nl\"') WHERE id = $1",
        "UPDATE orders SET sender = '{\"name\": \"\"}' WHERE id = $1",
        "UPDATE orders SET merge_variables = '{\"a\": 1}' WHERE id = $1",
        "UPDATE orders SET status = 'lost' WHERE id = $1",
        "UPDATE orders SET send_date = created_at::date - 1 WHERE id = $1",
        "UPDATE orders SET template_id = gen_random_uuid() WHERE id = $1",
    ];
    for statement in statements {
        let result = sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(id)
            .execute(&app.pool)
            .await;
        assert!(result.is_err(), "the database accepted: {statement}");
    }
}
