//! Timestamps as the API writes them: RFC 3339 in UTC with six fractional digits, `2026-11-28T12:00:00.000000Z`.

use serde::Serializer;
use time::{
    OffsetDateTime, UtcOffset, format_description::BorrowedFormatItem, macros::format_description,
};

/// Microseconds, the precision PostgreSQL keeps, always six digits: every timestamp has one length and sorts as text.
const FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// `at` in UTC, as `FORMAT` writes it.
pub fn format(at: OffsetDateTime) -> String {
    // Every component of FORMAT exists in an OffsetDateTime, so formatting cannot fail; the fallback is never taken.
    at.to_offset(UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_else(|_| at.to_string())
}

/// A timestamp member (`#[serde(with = "timestamp")]`).
pub fn serialize<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*at))
}

/// A timestamp member that may be `null` (`#[serde(with = "timestamp::option")]`).
pub mod option {
    use serde::Serializer;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(
        at: &Option<OffsetDateTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::serialize(at, serializer),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::format;

    #[test]
    fn six_fractional_digits_in_utc() {
        assert_eq!(
            format(datetime!(2026-11-28 12:00:31.6684 +02:00)),
            "2026-11-28T10:00:31.668400Z"
        );
        assert_eq!(
            format(datetime!(2026-11-28 12:00:00 UTC)),
            "2026-11-28T12:00:00.000000Z"
        );
    }
}
