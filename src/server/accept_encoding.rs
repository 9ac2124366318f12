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
    let elements: Vec<(String, Option<u16>)> = headers
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
        .collect();
    let weight_of = |coding: &str| {
        elements
            .iter()
            .find_map(|(listed, weight)| (listed == coding).then_some(*weight).flatten())
    };
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

    use super::{any_coding_acceptable, q_value};

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
