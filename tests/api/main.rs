//! The HTTP API against a real PostgreSQL: a fresh database per test, a real server on a free port.
#![allow(
    clippy::disallowed_methods,
    reason = "tests hold locks in transactions of their own, which no request runs"
)]

mod helpers;

mod auth;
mod bad_input;
mod cancellation;
mod cli;
mod compression;
mod conditional;
mod cors;
mod distribution;
mod docs;
mod faults;
mod hostile;
mod idempotency;
mod idempotency_keys;
mod logs;
mod metadata;
mod metrics;
mod operations;
mod order_batches;
mod orders;
mod pagination;
mod postgres_bringup;
mod rate_limits;
mod readme;
mod render;
mod row_rules;
mod template_versions;
mod templates;
mod timestamps;
