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

/// The origins whose browser scripts may call the API (CORS), from `CORS_ALLOWED_ORIGINS`: a comma-separated list of
/// `scheme://host[:port]`, exactly as browsers send them in `Origin` (RFC 6454), e.g.
/// `https://app.example.com,http://localhost:3000`. Empty, the default, turns CORS off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    /// The origins, in the order given.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl FromStr for AllowedOrigins {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                if is_origin(origin) {
                    Ok(origin.to_owned())
                } else {
                    Err(format!(
                        "`{origin}` is not an origin: write scheme://host[:port] in lower case, with no path or \
                         trailing slash, e.g. https://app.example.com"
                    ))
                }
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// Whether `origin` is serialized as browsers send it: `http` or `https`, `://`, a lower-case host, an optional port,
/// and nothing else.
fn is_origin(origin: &str) -> bool {
    let Ok(uri) = origin.parse::<axum::http::Uri>() else {
        return false;
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !authority.as_str().contains('@')
        && (authority.as_str() == authority.host()
            || authority
                .port_u16()
                .is_some_and(|port| authority.as_str() == format!("{}:{port}", authority.host())))
        && origin == format!("{scheme}://{authority}")
        && origin == origin.to_ascii_lowercase()
}

/// The database settings, enough for the command-line tools that do not serve HTTP.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before it gets a 503.
    pub acquire_timeout: Duration,
    /// PostgreSQL's `statement_timeout` for the sessions that serve requests: the longest a statement (lock waits
    /// included) may run before the database cancels it and the request gets a 503. Migrations are exempt.
    pub statement_timeout: Duration,
    /// PostgreSQL's `idle_in_transaction_session_timeout` for the sessions that serve requests: a session whose
    /// client stops sending inside a transaction is ended after this long, and its transaction rolled back, so
    /// that a vanished or stalled server does not hold keys and row locks.
    pub idle_in_transaction_timeout: Duration,
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

/// The per-account rate limit in front of `/v1`: a token bucket of `burst` requests refilled at
/// `requests_per_second`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests per second each account may send on average; 0 turns rate limiting off (the default).
    pub requests_per_second: u32,
    /// Requests an account may send at once after a pause; 0 means one second's worth (`requests_per_second`).
    pub burst: u32,
}

impl RateLimitConfig {
    /// Reads the rate-limit settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            requests_per_second: optional("RATE_LIMIT_REQUESTS_PER_SECOND", 0)?,
            burst: optional("RATE_LIMIT_BURST", 0)?,
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
    /// After SIGTERM or SIGINT, how long in-flight requests may take to finish; then they are abandoned, and the
    /// database rolls their transactions back when the process's connections close.
    pub shutdown_timeout: Duration,
    /// Browser origins allowed to call the API; none, the default, leaves CORS off.
    pub cors_allowed_origins: AllowedOrigins,
    pub idempotency: IdempotencyConfig,
    pub batches: BatchConfig,
    pub rate_limit: RateLimitConfig,
    /// How long this server keeps a live API key it has checked before checking it again (`API_KEY_CACHE_SECONDS`,
    /// default 5; 0 checks every request): the most a revocation takes to refuse the key here. Unknown and revoked
    /// keys are never kept.
    pub api_key_cache_ttl: Duration,
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
            shutdown_timeout: Duration::from_secs(30),
            idempotency: IdempotencyConfig::default(),
            batches: BatchConfig::default(),
            cors_allowed_origins: AllowedOrigins::default(),
            rate_limit: RateLimitConfig::default(),
            api_key_cache_ttl: Duration::from_secs(5),
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
            shutdown_timeout: seconds("SHUTDOWN_TIMEOUT_SECONDS", defaults.shutdown_timeout)?,
            idempotency: IdempotencyConfig::from_env()?,
            batches: BatchConfig::from_env()?,
            cors_allowed_origins: optional("CORS_ALLOWED_ORIGINS", defaults.cors_allowed_origins)?,
            rate_limit: RateLimitConfig::from_env()?,
            api_key_cache_ttl: optional(
                "API_KEY_CACHE_SECONDS",
                defaults.api_key_cache_ttl.as_secs(),
            )
            .map(Duration::from_secs)?,
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
            statement_timeout: Duration::from_millis(15_000),
            idle_in_transaction_timeout: Duration::from_millis(10_000),
        }
    }

    /// Reads the database settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::new(required("DATABASE_URL")?);
        Ok(Self {
            max_connections: positive("DATABASE_MAX_CONNECTIONS", defaults.max_connections)?,
            acquire_timeout: millis("DATABASE_ACQUIRE_TIMEOUT_MS", defaults.acquire_timeout)?,
            statement_timeout: millis("DATABASE_STATEMENT_TIMEOUT_MS", defaults.statement_timeout)?,
            idle_in_transaction_timeout: millis(
                "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
                defaults.idle_in_transaction_timeout,
            )?,
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

#[cfg(test)]
mod tests {
    use super::AllowedOrigins;

    #[test]
    fn allowed_origins_are_origins_as_browsers_send_them() {
        let origins: AllowedOrigins =
            " https://app.example.com, http://localhost:3000 ,http://[::1]:8080,"
                .parse()
                .unwrap();
        assert_eq!(
            origins.as_slice(),
            [
                "https://app.example.com",
                "http://localhost:3000",
                "http://[::1]:8080"
            ]
        );
        assert_eq!(
            "".parse::<AllowedOrigins>().unwrap(),
            AllowedOrigins::default()
        );
        for wrong in [
            "*",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://App.example.com",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "https://app.example.com:99999",
            "https://app.example.com:",
        ] {
            let error = wrong.parse::<AllowedOrigins>().unwrap_err();
            assert!(error.contains(wrong), "{wrong}: {error}");
        }
    }
}
