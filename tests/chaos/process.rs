//! Real `order-intake` processes on loopback: start, wait for, scrape, stop and kill them.

use std::{
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_order-intake");

/// The connection URL of a pool's database, for a child process.
pub fn database_url(pool: &PgPool) -> String {
    let options = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().expect("a database name"),
    )
}

/// A free port on 127.0.0.1, to hand to a child process.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// An account made by the binary's own `accounts create`, as an operator would.
pub struct Account {
    pub id: Uuid,
    pub api_key: String,
}

pub fn create_account(database_url: &str, name: &str) -> Account {
    let stdout = run(database_url, &["accounts", "create", "--name", name]);
    let created: Value = serde_json::from_slice(&stdout).expect("accounts create prints JSON");
    Account {
        id: created["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("id"),
        api_key: created["api_key"].as_str().expect("api_key").to_owned(),
    }
}

/// Applies the migrations with the binary.
pub fn migrate(database_url: &str) {
    run(database_url, &["migrate"]);
}

/// Runs one command of the binary against the database and returns what it printed; it must succeed.
fn run(database_url: &str, args: &[&str]) -> Vec<u8> {
    let output = Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run order-intake");
    assert!(
        output.status.success(),
        "order-intake {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// One server process; killed when dropped, so a failing test leaves nothing running.
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Server {
    /// Starts a server on a free port and waits until it answers `/healthz`.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        let mut all = vec![
            ("DATABASE_URL".to_owned(), database_url.to_owned()),
            ("RUST_LOG".to_owned(), "warn,order_intake=info".to_owned()),
            ("LOG_FORMAT".to_owned(), "json".to_owned()),
        ];
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Self::start_at(free_addr(), all).await
    }

    async fn start_at(addr: SocketAddr, env: Vec<(String, String)>) -> Self {
        let log = std::env::temp_dir().join(format!("order-intake-chaos-{}.log", Uuid::now_v7()));
        let child = Command::new(BIN)
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("LISTEN_ADDR", addr.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start the server");
        let mut server = Self {
            addr,
            child,
            env,
            log,
        };
        server.wait_until_up().await;
        server
    }

    async fn wait_until_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = reqwest::Client::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited with {status}: {}", self.log_text());
            }
            if client
                .get(self.url("/healthz"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not come up: {}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL: no graceful shutdown, no chance to finish anything.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// Starts the same server again, on the same address, after it was stopped or killed.
    pub async fn restart(&mut self) {
        let restarted = Self::start_at(self.addr, self.env.clone()).await;
        let old = std::mem::replace(self, restarted);
        drop(old);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> Metrics {
        let response = reqwest::get(self.url("/metrics"))
            .await
            .expect("GET /metrics");
        assert!(response.status().is_success());
        Metrics(response.text().await.expect("metrics text"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A scrape of `/metrics`.
pub struct Metrics(pub String);

impl Metrics {
    /// The sum of the samples named `name` whose labels include every pair of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (series_name, series_labels) = match series.split_once('{') {
                    Some((n, l)) => (n, l.trim_end_matches('}')),
                    None => (series, ""),
                };
                (series_name == name
                    && labels.iter().all(|(k, v)| {
                        series_labels
                            .split(',')
                            .any(|l| l == format!("{k}=\"{v}\""))
                    }))
                .then(|| value.parse::<f64>().ok())
                .flatten()
            })
            .sum()
    }
}
