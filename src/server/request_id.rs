//! The request id: a client's `x-request-id` when it is short visible ASCII, else one of the server's own.

use axum::{extract::Request, http::HeaderName};

/// The header that carries the request id, on the request and on its response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client, in characters.
pub const MAX_LENGTH: usize = 200;

/// Removes a client's `x-request-id` unless it is sent once with 1 to 200 visible ASCII characters (VCHAR,
/// RFC 5234: 0x21 to 0x7E), so that the request id layer gives the request a new UUID instead. The id is written
/// into every log line of the request; this keeps what a client puts there short and printable.
pub async fn drop_unfit(mut request: Request) -> Request {
    let headers = request.headers();
    let mut values = headers.get_all(REQUEST_ID).iter();
    let fit = match (values.next(), values.next()) {
        (None, _) => true,
        (Some(value), None) => is_fit(value.as_bytes()),
        (Some(_), Some(_)) => false,
    };
    if !fit {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

fn is_fit(id: &[u8]) -> bool {
    (1..=MAX_LENGTH).contains(&id.len()) && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_visible_ascii_is_kept_and_anything_else_is_not() {
        assert!(is_fit(b"req-42"));
        assert!(is_fit("x".repeat(MAX_LENGTH).as_bytes()));
        assert!(!is_fit("x".repeat(MAX_LENGTH + 1).as_bytes()));
        assert!(!is_fit(b""));
        assert!(!is_fit(b"two words"));
        assert!(!is_fit("Zoë".as_bytes()));
    }
}
