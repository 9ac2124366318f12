//! What a request's JSON is read into before it becomes a domain value: field errors and the validator that
//! collects them, unknown members, the three states of a PATCH member, and ids.

pub mod id;
pub mod member;
pub mod patch;
pub mod validation;
