//! Entity tags per content-coding: a compressed answer gets its own strong `ETag`, and the coding's suffix is
//! taken off the tags that requests send back.
//!
//! RFC 9110 (section 8.8.3) has a strong tag name one representation, byte for byte, and a gzip body is another
//! representation than the plain one; tower-http's `CompressionLayer` leaves `ETag` as the endpoint set it. As
//! Apache httpd does, this layer, just outside the compression layer, appends `-gzip`, `-br` or `-zstd` to a strong
//! tag when the answer has that `Content-Encoding`, and removes such a suffix from the tags of `If-Match` and
//! `If-None-Match` before the endpoint compares them, so a client that got `"3-gzip"` may send it back as it is.
//! Both ends of this layer agree; the endpoints and the exactly-once layer only ever see the plain tag.

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::Response,
};

/// The codings the compression layer produces, as `Content-Encoding` names them.
const CODINGS: [&str; 3] = ["gzip", "br", "zstd"];

/// Takes the coding suffix off the request's preconditions, and puts the answer's coding on its `ETag`.
pub async fn tag_per_coding(mut request: Request, next: Next) -> Response {
    let mut requested_coding = None;
    for name in [header::IF_MATCH, header::IF_NONE_MATCH] {
        strip_codings(request.headers_mut(), &name, &mut requested_coding);
    }
    let mut response = next.run(request).await;
    let coding = match response.headers().get(header::CONTENT_ENCODING) {
        Some(coding) => coding
            .to_str()
            .ok()
            .and_then(|coding| CODINGS.iter().find(|known| **known == coding).copied()),
        // A 304 has no body to encode; its tag is the one the client's copy carries.
        None if response.status() == StatusCode::NOT_MODIFIED => requested_coding,
        None => None,
    };
    if let Some(coding) = coding {
        let tagged = response
            .headers()
            .get(header::ETAG)
            .and_then(|tag| tag.to_str().ok())
            .and_then(|tag| with_coding(tag, coding));
        if let Some(tagged) = tagged {
            response.headers_mut().insert(header::ETAG, tagged);
        }
    }
    response
}

/// A strong tag `"x"` as `"x-<coding>"`; a weak tag stays as it is.
fn with_coding(tag: &str, coding: &str) -> Option<HeaderValue> {
    let opaque = tag.strip_prefix('"')?.strip_suffix('"')?;
    HeaderValue::try_from(format!("\"{opaque}-{coding}\"")).ok()
}

/// Rewrites the lines of the field `name` with every tag's coding suffix removed, noting the first coding seen.
fn strip_codings(headers: &mut HeaderMap, name: &HeaderName, seen: &mut Option<&'static str>) {
    let lines: Vec<HeaderValue> = headers.get_all(name).iter().cloned().collect();
    if lines.is_empty() {
        return;
    }
    headers.remove(name);
    for line in lines {
        let stripped = line
            .to_str()
            .ok()
            .map(|text| {
                text.split(',')
                    .map(|member| strip_coding(member.trim(), seen))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .and_then(|text| HeaderValue::try_from(text).ok());
        headers.append(name, stripped.unwrap_or(line));
    }
}

/// `"x-gzip"` as `"x"` (and `W/"x-gzip"` as `W/"x"`); any other member as it is.
fn strip_coding(member: &str, seen: &mut Option<&'static str>) -> String {
    for coding in CODINGS {
        let suffix = format!("-{coding}\"");
        if member.ends_with(&suffix) && (member.starts_with('"') || member.starts_with("W/\"")) {
            seen.get_or_insert(coding);
            return format!("{}\"", &member[..member.len() - suffix.len()]);
        }
    }
    member.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strong_tag_gets_the_coding() {
        assert_eq!(with_coding("\"3\"", "gzip").unwrap(), "\"3-gzip\"");
        assert!(with_coding("W/\"3\"", "gzip").is_none());
    }

    #[test]
    fn request_tags_lose_their_coding() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_MATCH,
            "\"3-br\", W/\"2-gzip\", \"1\", *".parse().unwrap(),
        );
        headers.append(header::IF_MATCH, "\"4-zstd\"".parse().unwrap());
        let mut seen = None;
        strip_codings(&mut headers, &header::IF_MATCH, &mut seen);
        let lines: Vec<_> = headers.get_all(header::IF_MATCH).iter().collect();
        assert_eq!(lines, ["\"3\", W/\"2\", \"1\", *", "\"4\""]);
        assert_eq!(seen, Some("br"));
    }
}
