//! Answer shapes that are not a resource: a new object with where it lives.

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::http::conditional::Tagged;

/// A 201 answer: the new object, where it lives, and its `ETag`.
pub struct Created<T> {
    location: String,
    body: T,
}

impl<T> Created<T> {
    pub fn at(location: String, body: T) -> Self {
        Self { location, body }
    }
}

impl<T: Serialize + Tagged> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        let tag = self.body.entity_tag().header_value();
        (
            StatusCode::CREATED,
            [(header::LOCATION, self.location)],
            [(header::ETAG, tag)],
            Json(self.body),
        )
            .into_response()
    }
}
