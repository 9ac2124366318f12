//! Distribution by account: on Citus the tables are distributed by `account_id` (or reference tables) and every
//! request of an account runs on one shard; on plain PostgreSQL the same migrations leave ordinary tables.
//!
//! `make test-citus` runs the suite against a Citus coordinator with `ORDER_INTAKE_TEST_CITUS=1`, and these tests
//! then insist on Citus: a test database whose tables silently stayed local fails them. The tests that need Citus
//! are ignored by a plain `cargo test` (with that reason) and run by `make test-citus` (`--include-ignored`).

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{Object, TestApp, address, order_for, order_path, template_path};

/// Whether this run is meant to be on Citus: `make test-citus` says so.
fn on_citus() -> bool {
    std::env::var("ORDER_INTAKE_TEST_CITUS").is_ok_and(|value| value == "1")
}

async fn has_citus_extension(pool: &PgPool) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Fails unless the test database is a Citus database with its two workers.
async fn assert_citus(pool: &PgPool) {
    assert!(
        has_citus_extension(pool).await,
        "the test database has no citus extension: run this through `make test-citus`"
    );
    let workers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary' AND isactive AND groupid <> 0",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(workers, 2, "the test database knows its two workers");
}

#[sqlx::test]
async fn the_test_database_is_citus_exactly_when_the_suite_runs_on_citus(pool: PgPool) {
    assert_eq!(
        has_citus_extension(&pool).await,
        on_citus(),
        "ORDER_INTAKE_TEST_CITUS says whether the suite runs on Citus; the test database disagrees"
    );
}

#[sqlx::test]
async fn on_plain_postgresql_the_migrations_leave_ordinary_tables(pool: PgPool) {
    if on_citus() {
        assert_citus(&pool).await;
        return;
    }
    assert!(!has_citus_extension(&pool).await);
    // The helper later migrations call does nothing without Citus, for either kind of table.
    sqlx::raw_sql(
        "CREATE TABLE later_lookup (id uuid PRIMARY KEY);
         CREATE TABLE later_batches (account_id uuid REFERENCES accounts (id), id uuid, PRIMARY KEY (account_id, id));
         SELECT order_intake_distribute('later_lookup', 'reference');
         SELECT order_intake_distribute('later_batches', 'account');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT relkind::text FROM pg_class WHERE relname IN ('later_lookup', 'later_batches', 'orders', 'templates')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(kinds, ["r", "r", "r", "r"], "ordinary tables");
    let wrong = sqlx::query("SELECT order_intake_distribute('later_batches', 'hash')")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(
        wrong.to_string().contains("must be reference or account"),
        "{wrong}"
    );
}

#[sqlx::test]
#[ignore = "needs Citus: make test-citus"]
async fn on_citus_the_tables_are_distributed_by_account_and_co_located(pool: PgPool) {
    assert_citus(&pool).await;
    let tables: Vec<(String, String, String)> = sqlx::query_as(
        r#"SELECT table_name::text, citus_table_type, distribution_column FROM citus_tables
           ORDER BY table_name::text COLLATE "C""#,
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected = [
        ("accounts", "reference", "<none>"),
        ("api_keys", "reference", "<none>"),
        ("idempotency_keys", "distributed", "account_id"),
        ("order_batch_rows", "distributed", "account_id"),
        ("order_batches", "distributed", "account_id"),
        ("orders", "distributed", "account_id"),
        ("template_versions", "distributed", "account_id"),
        ("templates", "distributed", "account_id"),
    ];
    assert_eq!(
        tables,
        expected.map(|(t, k, c)| (t.to_owned(), k.to_owned(), c.to_owned()))
    );
    let groups: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT colocation_id) FROM citus_tables WHERE citus_table_type = 'distributed'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(groups, 1, "one co-location group");
    // A template's versions sit on the shard of the template, and so of the orders that refer to them: the foreign
    // keys between them are checked on one worker.
    let (accounts, apart): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE get_shard_id_for_distribution_column('template_versions', a)
                                          <> get_shard_id_for_distribution_column('templates', a)
                                       AND (SELECT nodeport FROM citus_shards WHERE shardid =
                                              get_shard_id_for_distribution_column('template_versions', a))
                                        <> (SELECT nodeport FROM citus_shards WHERE shardid =
                                              get_shard_id_for_distribution_column('templates', a)))
         FROM (SELECT gen_random_uuid() FROM generate_series(1, 100)) AS accounts (a)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (accounts, apart),
        (100, 0),
        "versions live beside their templates"
    );
    let nodes: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT nodeport) FROM citus_shards WHERE table_name = 'orders'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        nodes, 2,
        "the shards of orders are spread over both workers"
    );
}

/// Single-shard and multi-shard executions of distributed queries in this database, as Citus counts them on the
/// coordinator (`citus.enable_stat_counters`, which `.ci/citus` turns on).
async fn executions(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT query_execution_single_shard, query_execution_multi_shard
         FROM citus_stat_counters WHERE name = current_database()",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The worker that holds the shard of `table` for the account.
async fn worker_of(pool: &PgPool, table: &str, account_id: Uuid) -> i32 {
    sqlx::query_scalar(
        "SELECT nodeport FROM citus_shards
         WHERE shardid = get_shard_id_for_distribution_column($1::regclass, $2)",
    )
    .bind(table)
    .bind(account_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test]
#[ignore = "needs Citus: make test-citus"]
async fn on_citus_every_request_of_an_account_runs_on_one_shard(pool: PgPool) {
    assert_citus(&pool).await;
    let app = TestApp::spawn(pool.clone()).await;
    let enabled: String = sqlx::query_scalar("SHOW citus.enable_stat_counters")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(enabled, "on", "the coordinator counts executions");
    // The first request records the API key's use: a write of the api_keys reference table, on every node, in two
    // phases. It happens at most once a minute per key, outside any request's transaction; make it now.
    app.get("/v1/templates").await.assert_status(StatusCode::OK);
    let before = executions(&pool).await;
    // The migrations, the account and the key's use (reference tables, on every node) committed in two phases; the
    // requests must not.
    let prepared_before = two_phase_commits(&pool).await;

    // The hot path: a keyed order, its replay, and the rest of the API for the same account.
    let template = app.create_template("<p>Hi {{name}}</p>").await;
    let mut body = order_for(&template);
    body["merge_variables"] = json!({"name": "Anna"});
    let created = app
        .keyed(Method::POST, "/v1/orders", "one-shard", &body)
        .await;
    created.assert_status(StatusCode::CREATED);
    let replayed = app
        .keyed(Method::POST, "/v1/orders", "one-shard", &body)
        .await;
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    let id = created.id();
    app.get(&order_path(&id))
        .await
        .assert_status(StatusCode::OK);
    app.get("/v1/orders?limit=5")
        .await
        .assert_status(StatusCode::OK);
    app.keyed(
        Method::PATCH,
        &order_path(&id),
        "patch-1",
        &json!({"recipient": address()}),
    )
    .await
    .assert_status(StatusCode::OK);
    // Template versions, rendering and metadata: a PATCH writes version 2, both versions are read back, an order
    // and a preview are rendered, and orders are found by metadata.
    let path = template_path(template.id());
    app.keyed(
        Method::PATCH,
        &path,
        "patch-template",
        &json!({"content": "<p>Hello {{name}}</p>", "metadata": {"campaign": "spring"}}),
    )
    .await
    .assert_status(StatusCode::OK);
    let versions = app.get(&format!("{path}/versions?limit=5")).await;
    versions.assert_status(StatusCode::OK);
    assert_eq!(versions.json()["data"].as_array().map(Vec::len), Some(2));
    app.get(&format!("{path}/versions/1"))
        .await
        .assert_status(StatusCode::OK);
    let preview = app
        .keyed(
            Method::POST,
            &format!("{path}/render"),
            "preview",
            &json!({"merge_variables": {"name": "Bea"}}),
        )
        .await;
    preview.assert_status(StatusCode::OK);
    assert_eq!(preview.body, b"<p>Hello Bea</p>");
    let rendered = app.get(&format!("/v1/orders/{id}/render")).await;
    rendered.assert_status(StatusCode::OK);
    assert_eq!(
        rendered.body, b"<p>Hi Anna</p>",
        "the order prints version 1"
    );
    app.keyed(
        Method::PATCH,
        &order_path(&id),
        "patch-metadata",
        &json!({"metadata": {"customer_id": "4711"}}),
    )
    .await
    .assert_status(StatusCode::OK);
    let found = app.get("/v1/orders?metadata[customer_id]=4711").await;
    found.assert_status(StatusCode::OK);
    assert_eq!(found.json()["data"][0]["id"], id.as_str());
    app.delete(&order_path(&id))
        .await
        .assert_status(StatusCode::OK);
    let spare = app.create_template("<p>Spare</p>").await;
    app.delete(&template_path(spare.id()))
        .await
        .assert_status(StatusCode::NO_CONTENT);

    let after = executions(&pool).await;
    assert_eq!(
        after.1 - before.1,
        0,
        "no statement of a request spans shards"
    );
    assert!(
        after.0 - before.0 >= 10,
        "the requests ran single-shard statements: {before:?} -> {after:?}"
    );
    // The key row and its order live on the same worker, so the keyed write commits there alone.
    assert_eq!(
        worker_of(&pool, "orders", app.account_id).await,
        worker_of(&pool, "idempotency_keys", app.account_id).await
    );
    let new_commits: Vec<String> = two_phase_commits(&pool)
        .await
        .into_iter()
        .filter(|gid| !prepared_before.contains(gid))
        .collect();
    assert_eq!(
        new_commits,
        Vec::<String>::new(),
        "no request needed a two-phase commit"
    );
}

/// The two-phase commits the coordinator has recorded and not yet cleaned up (`pg_dist_transaction`).
async fn two_phase_commits(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT gid FROM pg_dist_transaction")
        .fetch_all(pool)
        .await
        .unwrap()
}
