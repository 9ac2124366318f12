//! Faults against real `order-intake` processes on loopback: duplicate storms, several instances, kill -9,
//! PostgreSQL restarts. Each test starts what it needs and stops it by itself.

mod client;
mod consistency;
mod process;

mod batch;
mod instances;
mod kill;
mod postgres_restart;
mod storm;
