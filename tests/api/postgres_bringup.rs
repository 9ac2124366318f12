//! `.ci/postgres`, the fresh-machine bring-up: with no server at DATABASE_URL it starts a project-local cluster.

use std::process::Command;

use sqlx::Connection;

use crate::helpers::free_port;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/postgres");

#[tokio::test]
async fn starts_a_cluster_where_nothing_answers_and_creates_the_database() {
    let port = free_port();
    let data_dir =
        std::env::temp_dir().join(format!("order-intake-bringup-{}", std::process::id()));
    let url = format!("postgres://postgres@127.0.0.1:{port}/bringup_check");
    let run = |args: &[&str]| {
        Command::new(SCRIPT)
            .args(args)
            .env("DATABASE_URL", &url)
            .env("PG_DATA_DIR", &data_dir)
            .output()
            .unwrap()
    };

    let up = run(&[]);
    let database = match sqlx::PgConnection::connect(&url).await {
        Ok(mut conn) => sqlx::query_scalar::<_, String>("SELECT current_database()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let again = run(&[]);
    let stop = run(&["stop"]);
    let after_stop = sqlx::PgConnection::connect(&url).await;
    let _ = std::fs::remove_dir_all(&data_dir);

    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(String::from_utf8_lossy(&up.stderr).contains("initialising a cluster"));
    assert_eq!(
        database.as_deref(),
        Ok("bringup_check"),
        "the new cluster serves the new database"
    );
    assert!(
        again.status.success(),
        "a second run finds it up: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert!(after_stop.is_err(), "stop stops the cluster");
}
