//! Idempotency keys: a retried POST or PATCH runs once and gets its first answer back.
//!
//! `layer` is the whole mechanism around the endpoints; `key` and `fingerprint` say what a key and a request are;
//! `replay` captures and gives back responses; `locks` lines up duplicates; `sweeper` deletes expired keys; `tx` is
//! the request's transaction, which the layer shares with the handler and commits or rolls back; `batch` does what
//! the layer does for many rows of an order batch at once.

pub mod batch;
pub mod fingerprint;
pub mod key;
pub mod layer;
pub mod locks;
pub mod replay;
pub mod sweeper;
pub mod tx;
