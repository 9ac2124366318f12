//! Domain types: values that satisfy the API's rules once they are built.

pub mod address;
pub mod batch;
pub mod country;
pub mod csv;
pub mod input;
pub mod merge;
pub mod metadata;
pub mod order;
pub mod schemas;
pub mod template;
pub mod timestamp;

/// The longest idempotency key, in characters: of the `Idempotency-Key` header, and of a key a batch row derives.
pub const MAX_IDEMPOTENCY_KEY_LENGTH: usize = 255;
/// The largest template content, in bytes: what the content check and its schema both read.
pub const MAX_CONTENT_BYTES: usize = 512 * 1024;
