//! Domain types: values that satisfy the API's rules once they are built.

pub mod address;
pub mod batch;
pub mod country;
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
