//! Domain types: values that satisfy the API's rules once they are built.

pub mod address;
pub mod batch;
pub mod country;
pub mod csv;
pub mod id;
pub mod markup;
pub mod member;
pub mod metadata;
pub mod order;
pub mod patch;
pub mod schemas;
pub mod template;
pub mod timestamp;
pub mod validation;

/// The longest idempotency key, in characters: of the `Idempotency-Key` header, and of a key a batch row derives.
pub const MAX_IDEMPOTENCY_KEY_LENGTH: usize = 255;
