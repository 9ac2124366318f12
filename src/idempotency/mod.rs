//! Idempotency keys: a retried POST or PATCH runs once and gets its first answer back.
//!
//! `layer` is the whole mechanism around the endpoints; `key` and `fingerprint` say what a key and a request are;
//! `replay` captures and gives back responses; `locks` lines up duplicates; `sweeper` deletes expired keys.

pub mod fingerprint;
pub mod key;
pub mod layer;
pub mod locks;
pub mod replay;
pub mod sweeper;
