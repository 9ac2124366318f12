//! Logging: a tracing subscriber writing JSON or human-readable lines to stderr, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{self, ConfigError, LogFormat};

/// Without `RUST_LOG`: info, but not PostgreSQL's notices (such as "relation already exists, skipping").
const DEFAULT_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// Installs the global subscriber. Logs go to stderr so that commands can print their results on stdout.
pub fn init() -> Result<(), ConfigError> {
    let format = config::log_format()?;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => {
            EnvFilter::try_new(&directives).map_err(|e| ConfigError::Invalid {
                name: "RUST_LOG",
                value: directives.clone(),
                reason: e.to_string(),
            })?
        }
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        LogFormat::Pretty => builder.init(),
    }
    Ok(())
}
