//! Entity tags per content-coding: a compressed answer gets its own strong `ETag`, and the tags that requests send
//! back are read for the representation this request gets.
//!
//! RFC 9110 (section 8.8.3) has a strong tag name one representation, byte for byte, and a gzip body is another
//! representation than the plain one; tower-http's `CompressionLayer` leaves `ETag` as the endpoint set it. As
//! Apache httpd does, this layer, just outside the compression layer, appends `-gzip`, `-br` or `-zstd` to a strong
//! tag when the answer has that `Content-Encoding`, and removes such a suffix from the tags of `If-Match` and
//! `If-None-Match` before the endpoint compares them, so the endpoints and the exactly-once layer only ever see the
//! plain tag. `If-Match` compares the object, so either form passes. `If-None-Match` asks whether the client holds
//! the representation it would get now, so only the tags of that representation's coding are kept (`reads_as`),
//! and a 304 or 412, which have no body of their own, name that representation and carry its `Vary`.

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::Response,
};

use super::accept_encoding::preferred_coding;
use crate::http::conditional::split_list;

/// The codings the compression layer produces, as `Content-Encoding` names them.
const CODINGS: [&str; 3] = ["gzip", "br", "zstd"];

/// Reads the request's preconditions for its representation, and puts the answer's coding on its `ETag`.
pub async fn tag_per_coding(mut request: Request, next: Next) -> Response {
    let representation = preferred_coding(request.headers());
    rewrite(request.headers_mut(), &header::IF_MATCH, |tag| {
        Some(tag.plain)
    });
    rewrite(request.headers_mut(), &header::IF_NONE_MATCH, |tag| {
        reads_as(tag, representation)
    });
    let mut response = next.run(request).await;
    let without_body = matches!(
        response.status(),
        StatusCode::NOT_MODIFIED | StatusCode::PRECONDITION_FAILED
    );
    let coding = if without_body {
        // The answer stands for the representation this request would have had, not for its own body.
        if response.status() == StatusCode::NOT_MODIFIED {
            vary_on_accept_encoding(response.headers_mut());
        }
        representation
    } else {
        response
            .headers()
            .get(header::CONTENT_ENCODING)
            .and_then(|coding| coding.to_str().ok())
            .and_then(|coding| CODINGS.iter().find(|known| **known == coding).copied())
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

/// Adds `Vary: Accept-Encoding` unless the answer has it: a 304 carries the `Vary` its 200 would have had (RFC
/// 9110, section 15.4.5), which the compression layer adds only to bodies it could encode.
fn vary_on_accept_encoding(headers: &mut HeaderMap) {
    let varies = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case("accept-encoding"));
    if !varies {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// A strong tag `"x"` as `"x-<coding>"`; a weak tag stays as it is.
fn with_coding(tag: &str, coding: &str) -> Option<HeaderValue> {
    let opaque = tag.strip_prefix('"')?.strip_suffix('"')?;
    HeaderValue::try_from(format!("\"{opaque}-{coding}\"")).ok()
}

/// An entity tag of a request, split into its plain form (`"x"` or `W/"x"`) and the coding its suffix names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CodedTag {
    plain: String,
    coding: Option<&'static str>,
}

/// The tag as `If-None-Match` compares it for a request that gets `representation`: its plain form when it names
/// that coding's representation (the plain one for `None`), else nothing, so that a client never holds a body it
/// cannot decode for current.
fn reads_as(tag: CodedTag, representation: Option<&'static str>) -> Option<String> {
    (tag.coding == representation).then_some(tag.plain)
}

/// Rewrites each entity tag of the field `name` by `read` (dropping those it gives `None` for), keeping every other
/// member, `*` and what is not an entity tag included, as it is for the endpoint to judge.
fn rewrite(headers: &mut HeaderMap, name: &HeaderName, read: impl Fn(CodedTag) -> Option<String>) {
    let lines: Vec<HeaderValue> = headers.get_all(name).iter().cloned().collect();
    if lines.is_empty() {
        return;
    }
    headers.remove(name);
    for line in lines {
        let rewritten = line
            .to_str()
            .ok()
            .map(|text| {
                split_list(text)
                    .into_iter()
                    .filter_map(|member| match coded_tag(member) {
                        Some(tag) => read(tag),
                        None => Some(member.to_owned()),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .and_then(|text| HeaderValue::try_from(text).ok());
        headers.append(name, rewritten.unwrap_or(line));
    }
}

/// `"x-gzip"` as `"x"` coded `gzip` (and `W/"x-gzip"` as `W/"x"`); `"x"` uncoded; `None` for what is no tag.
fn coded_tag(member: &str) -> Option<CodedTag> {
    let opaque = member
        .strip_prefix("W/")
        .unwrap_or(member)
        .strip_prefix('"')?
        .strip_suffix('"')?;
    if opaque.contains('"') {
        return None;
    }
    for coding in CODINGS {
        let suffix = format!("-{coding}\"");
        if let Some(plain) = member.strip_suffix(&suffix) {
            return Some(CodedTag {
                plain: format!("{plain}\""),
                coding: Some(coding),
            });
        }
    }
    Some(CodedTag {
        plain: member.to_owned(),
        coding: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strong_tag_gets_the_coding() {
        assert_eq!(with_coding("\"3\"", "gzip").unwrap(), "\"3-gzip\"");
        assert!(with_coding("W/\"3\"", "gzip").is_none());
    }

    fn rewritten(lines: &[&str], read: impl Fn(CodedTag) -> Option<String>) -> Vec<String> {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(header::IF_MATCH, line.parse().unwrap());
        }
        rewrite(&mut headers, &header::IF_MATCH, read);
        headers
            .get_all(header::IF_MATCH)
            .iter()
            .map(|line| line.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn if_match_tags_lose_their_coding() {
        assert_eq!(
            rewritten(
                &["\"3-br\", W/\"2-gzip\", \"1\", *, 2", "\"4-zstd\""],
                |tag| Some(tag.plain)
            ),
            ["\"3\", W/\"2\", \"1\", *, 2", "\"4\""]
        );
    }

    #[test]
    fn if_none_match_keeps_only_the_tags_of_the_representation() {
        let lines = ["\"1\", \"1-gzip\", W/\"2-br\", \"a,b\", x"];
        assert_eq!(
            rewritten(&lines, |tag| reads_as(tag, None)),
            ["\"1\", \"a,b\", x"]
        );
        assert_eq!(
            rewritten(&lines, |tag| reads_as(tag, Some("gzip"))),
            ["\"1\", x"]
        );
        assert_eq!(
            rewritten(&lines, |tag| reads_as(tag, Some("br"))),
            ["W/\"2\", x"]
        );
    }
}
