//! order-intake: print-and-mail orders and the templates they are printed from, over HTTP.

pub mod api;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod server;
pub mod state;
pub mod telemetry;

pub use server::app;
pub use state::AppState;
