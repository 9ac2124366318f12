//! order-intake: print-and-mail orders and the templates they are printed from, over HTTP.

pub mod accept_encoding;
pub mod api;
pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod entity_tag_coding;
pub mod error;
pub mod idempotency;
pub mod metrics;
pub mod rate_limit;
pub mod request_id;
pub mod serve;
pub mod server;
pub mod state;
pub mod telemetry;

pub use server::app;
pub use state::AppState;
