//! The HTTP edge that `/v1` handlers and the exactly-once layer stand on: errors as problems, authentication, rate
//! limits, the request body, extractors, entity tags and preconditions, the 201 answer, and requests that run to
//! completion.

pub mod auth;
pub mod body;
pub mod conditional;
pub mod detached;
pub mod error;
pub mod extract;
pub mod rate_limit;
pub mod response;
