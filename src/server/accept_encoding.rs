//! Accept-Encoding that no coding can satisfy is disregarded before the request runs.
//!
//! tower-http's `CompressionLayer` answers 406 when a request excludes `identity` and accepts none of the codings
//! the server has, but it decides only once the endpoint has answered: a POST would be applied and reported as 406,
//! with the created object's body. RFC 9110 §12.5.3 lets a server disregard the field instead, so a request whose
//! field leaves nothing acceptable loses it here, in front of the compression layer, and gets the plain body.
//! The reading below follows tower-http's (RFC 9110 §12.4.2 q-values, `x-gzip` for `gzip`, unknown codings and
//! malformed weights skipped) so that both agree on which fields leave nothing acceptable.

use axum::{
    extract::Request,
    http::{HeaderMap, header},
};

/// The codings the compression layer can produce, `identity` included.
const CODINGS: [&str; 4] = ["gzip", "br", "zstd", "identity"];

/// Removes `Accept-Encoding` from a request when it leaves no coding of `CODINGS` acceptable.
pub async fn disregard_unsatisfiable(mut request: Request) -> Request {
    if !any_coding_acceptable(request.headers()) {
        request.headers_mut().remove(header::ACCEPT_ENCODING);
    }
    request
}

/// Whether some coding of `CODINGS` has a weight above zero. Without the field every coding is acceptable; an
/// unlisted coding takes the weight of `*`, or, without `*`, is unacceptable, except `identity`, which is
/// acceptable unless listed with weight 0.
pub fn any_coding_acceptable(headers: &HeaderMap) -> bool {
    let elements = elements(headers);
    let weight_of = |coding: &str| weight_of(&elements, coding);
    match weight_of("*") {
        Some(any) => CODINGS
            .iter()
            .any(|coding| weight_of(coding).unwrap_or(any) > 0),
        None => {
            let listed_acceptable = elements.iter().any(|(coding, weight)| {
                CODINGS.contains(&coding.as_str()) && weight.is_some_and(|weight| weight > 0)
            });
            let identity_excluded = elements
                .iter()
                .any(|(coding, weight)| coding == "identity" && *weight == Some(0));
            listed_acceptable || !identity_excluded
        }
    }
}

/// The coding the compression layer gives a compressible answer to a request with these headers, as
/// `Content-Encoding` names it; `None` for the plain body.
///
/// As tower-http chooses: the highest weight above zero, an unlisted coding taking the weight of `*` (without `*`,
/// only the listed codings count), and on a tie zstd before br before gzip before identity.
pub fn preferred_coding(headers: &HeaderMap) -> Option<&'static str> {
    let elements = elements(headers);
    let any = weight_of(&elements, "*");
    // Least preferred first, as tower-http ranks them.
    let ranked = ["identity", "gzip", "br", "zstd"];
    ranked
        .iter()
        .enumerate()
        .filter_map(|(rank, coding)| {
            let weight = weight_of(&elements, coding).or(any)?;
            (weight > 0).then_some((weight, rank, *coding))
        })
        .max()
        .map(|(_, _, coding)| coding)
        .filter(|coding| *coding != "identity")
}

/// The elements of the request's `Accept-Encoding`: each coding in lower case (`x-gzip` as `gzip`) with its
/// weight in thousandths, `None` when the weight is malformed.
fn elements(headers: &HeaderMap) -> Vec<(String, Option<u16>)> {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|element| {
            let mut parts = element.splitn(2, ';');
            let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let coding = if coding == "x-gzip" {
                "gzip".to_owned()
            } else {
                coding
            };
            let weight = parts
                .next()
                .map_or(Some(1000), |weight| q_value(weight.trim()));
            (coding, weight)
        })
        .collect()
}

/// The weight of the first element that lists `coding` with a well-formed weight.
fn weight_of(elements: &[(String, Option<u16>)], coding: &str) -> Option<u16> {
    elements
        .iter()
        .find_map(|(listed, weight)| (listed == coding).then_some(*weight).flatten())
}

/// A weight `q=0`, `q=0.5`, `q=1.000` in thousandths (RFC 9110 §12.4.2); `None` when malformed.
fn q_value(weight: &str) -> Option<u16> {
    let value = weight
        .strip_prefix("q=")
        .or_else(|| weight.strip_prefix("Q="))?;
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let whole = match whole {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    if fraction.len() > 3 || !fraction.bytes().all(|digit| digit.is_ascii_digit()) {
        return None;
    }
    let fraction = format!("{fraction:0<3}").parse::<u16>().ok()?;
    let thousandths = whole + fraction;
    (thousandths <= 1000).then_some(thousandths)
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::{any_coding_acceptable, preferred_coding, q_value};

    fn acceptable(field: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(field).unwrap(),
        );
        any_coding_acceptable(&headers)
    }

    #[test]
    fn fields_that_leave_a_coding_acceptable() {
        assert!(any_coding_acceptable(&HeaderMap::new()));
        for field in [
            "",
            "gzip",
            "identity",
            "deflate",
            "gzip;q=0",
            "br;q=0.001, identity;q=0",
            "X-GZIP, identity;q=0",
            "*",
            "*;q=0, zstd",
            "*;q=0.5, identity;q=0",
            "identity;q=0, *;q=0.1",
            "identity;q=0;x=1, gzip",
        ] {
            assert!(acceptable(field), "{field}");
        }
    }

    #[test]
    fn fields_that_leave_nothing_acceptable() {
        for field in [
            "identity;q=0",
            "*;q=0",
            "deflate, identity;q=0",
            "gzip;q=0, br;q=0, zstd;q=0, identity;q=0",
            "*;q=0, identity;q=0.000",
            "gzip;q=2, identity;q=0",
            "identity;Q=0",
        ] {
            assert!(!acceptable(field), "{field}");
        }
    }

    #[test]
    fn the_preferred_coding_is_the_one_tower_http_picks() {
        let preferred = |field: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(field).unwrap(),
            );
            preferred_coding(&headers)
        };
        assert_eq!(preferred_coding(&HeaderMap::new()), None);
        for (field, coding) in [
            ("gzip", Some("gzip")),
            ("gzip, br", Some("br")),
            ("gzip, br, zstd", Some("zstd")),
            ("gzip;q=1, br;q=0.5", Some("gzip")),
            ("identity", None),
            ("identity, gzip", Some("gzip")),
            ("gzip;q=0.5, identity", None),
            ("gzip;q=0", None),
            ("deflate", None),
            ("*", Some("zstd")),
            ("*;q=0.5, gzip", Some("gzip")),
            ("X-GZIP", Some("gzip")),
        ] {
            assert_eq!(preferred(field), coding, "{field}");
        }
    }

    #[test]
    fn weights_read_as_rfc_9110_writes_them() {
        assert_eq!(q_value("q=1"), Some(1000));
        assert_eq!(q_value("q=0.5"), Some(500));
        assert_eq!(q_value("q=0.123"), Some(123));
        assert_eq!(q_value("q=1.000"), Some(1000));
        for malformed in ["q=1.001", "q=0.1234", "q=2", "q=", "q=.5", "x=1", "q=0.5x"] {
            assert_eq!(q_value(malformed), None, "{malformed}");
        }
    }
}
