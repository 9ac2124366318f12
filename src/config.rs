//! Config: every setting of the service, read once from the environment (and `.env` when present).

use std::{fmt::Display, net::SocketAddr, str::FromStr, time::Duration};

/// A setting that is missing or does not parse; start-up stops with its one-line message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {name} is not set")]
    Missing { name: &'static str },
    #[error("invalid configuration: {name}={value:?}: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            _ => Err("expected `json` or `pretty`".to_owned()),
        }
    }
}

/// The database settings, enough for the command-line tools that do not serve HTTP.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before it gets a 503.
    pub acquire_timeout: Duration,
}

/// The idempotency-key settings.
#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    /// POST and PATCH without `Idempotency-Key` are rejected with 400.
    pub key_required: bool,
    /// How long a request waits for another one with the same key (and any statement for a lock) before a 409.
    pub wait_timeout: Duration,
    /// How long a key is replayed after its creation.
    pub key_ttl: Duration,
    /// How often the sweeper deletes expired keys.
    pub sweep_interval: Duration,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            key_required: false,
            wait_timeout: Duration::from_secs(10),
            key_ttl: Duration::from_secs(86_400),
            sweep_interval: Duration::from_secs(60),
        }
    }
}

impl IdempotencyConfig {
    /// Reads the idempotency settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            key_required: optional("IDEMPOTENCY_KEY_REQUIRED", defaults.key_required)?,
            wait_timeout: millis("IDEMPOTENCY_WAIT_TIMEOUT_MS", defaults.wait_timeout)?,
            key_ttl: seconds("IDEMPOTENCY_KEY_TTL_SECONDS", defaults.key_ttl)?,
            sweep_interval: seconds(
                "IDEMPOTENCY_SWEEP_INTERVAL_SECONDS",
                defaults.sweep_interval,
            )?,
        })
    }
}

/// Everything the HTTP server needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub listen_addr: SocketAddr,
    pub request_body_limit_bytes: usize,
    pub request_timeout: Duration,
    pub run_migrations: bool,
    pub idempotency: IdempotencyConfig,
    pub batches: BatchConfig,
}

/// The limits of one order batch (`POST /v1/order_batches`).
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Most rows in one batch; more is a 422 and nothing is written.
    pub max_rows: usize,
    /// Largest batch body in bytes, instead of `REQUEST_BODY_LIMIT_BYTES`; more is a 413 and nothing is written.
    /// 20 MiB holds 10 000 rows of about 2 KiB each.
    pub body_limit_bytes: usize,
    /// Rows taken per transaction (see `api::order_batches`); `bench/batch` compares sizes.
    pub chunk_rows: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_rows: 10_000,
            body_limit_bytes: 20 * 1024 * 1024,
            chunk_rows: 500,
        }
    }
}

impl BatchConfig {
    /// Reads the batch limits from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            max_rows: positive("BATCH_MAX_ROWS", defaults.max_rows)?,
            body_limit_bytes: positive("BATCH_BODY_LIMIT_BYTES", defaults.body_limit_bytes)?,
            chunk_rows: positive("BATCH_CHUNK_ROWS", defaults.chunk_rows)?,
        })
    }
}

impl Config {
    /// The defaults of every setting, with this database.
    pub fn new(database: DatabaseConfig) -> Self {
        Self {
            database,
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            run_migrations: false,
            idempotency: IdempotencyConfig::default(),
            batches: BatchConfig::default(),
        }
    }

    /// Reads the whole configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::new(DatabaseConfig::from_env()?);
        Ok(Self {
            listen_addr: optional("LISTEN_ADDR", defaults.listen_addr)?,
            request_body_limit_bytes: positive(
                "REQUEST_BODY_LIMIT_BYTES",
                defaults.request_body_limit_bytes,
            )?,
            request_timeout: seconds("REQUEST_TIMEOUT_SECONDS", defaults.request_timeout)?,
            run_migrations: optional("RUN_MIGRATIONS", defaults.run_migrations)?,
            idempotency: IdempotencyConfig::from_env()?,
            batches: BatchConfig::from_env()?,
            ..defaults
        })
    }
}

/// How logs are written, from `LOG_FORMAT` (default `pretty`); read apart so that logging starts first.
pub fn log_format() -> Result<LogFormat, ConfigError> {
    optional("LOG_FORMAT", LogFormat::Pretty)
}

impl DatabaseConfig {
    /// The defaults, with this URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_millis(3000),
        }
    }

    /// Reads the database settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::new(required("DATABASE_URL")?);
        Ok(Self {
            max_connections: positive("DATABASE_MAX_CONNECTIONS", defaults.max_connections)?,
            acquire_timeout: millis("DATABASE_ACQUIRE_TIMEOUT_MS", defaults.acquire_timeout)?,
            ..defaults
        })
    }
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => Err(ConfigError::Missing { name }),
    }
}

fn optional<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(value) if value.is_empty() => Ok(default),
        Ok(value) => value.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
            value,
        }),
    }
}

fn positive<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr + Default + PartialOrd + Display,
    T::Err: Display,
{
    let value = optional(name, default)?;
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            name,
            value: value.to_string(),
            reason: "must be greater than zero".to_owned(),
        })
    }
}

fn seconds(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    positive(name, default.as_secs()).map(Duration::from_secs)
}

fn millis(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    positive(name, u64::try_from(default.as_millis()).unwrap_or(u64::MAX))
        .map(Duration::from_millis)
}
