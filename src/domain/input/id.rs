//! Object ids: UUIDs, written in their hyphenated form.

use time::OffsetDateTime;
use uuid::Uuid;

/// An id as the API writes them: 36 characters, `8-4-4-4-12` hex digits.
pub fn parse_id(id: &str) -> Result<Uuid, String> {
    let malformed = || "must be an id: a UUID like 019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e".to_owned();
    if id.len() != 36 {
        return Err(malformed());
    }
    Uuid::try_parse(id).map_err(|_| malformed())
}

/// The lowest id of those taken at `time` or later. An id is a UUIDv7: its first 48 bits are the Unix time in
/// milliseconds at which it was taken, and ids compare by their bits, so an id was taken at `time` or later exactly
/// when it is at least this one (the first whole millisecond from `time`, and no other bits).
pub fn lowest_id_from(time: OffsetDateTime) -> Uuid {
    const MILLISECOND: u128 = 1_000_000;
    let nanoseconds = u128::try_from(time.unix_timestamp_nanos()).unwrap_or(0);
    let milliseconds = nanoseconds.div_ceil(MILLISECOND).min((1 << 48) - 1);
    Uuid::from_u128(milliseconds << 80)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn an_id_is_from_a_time_when_its_millisecond_is_at_or_after_it() {
        let id = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            1_767_225_600,
            7_000_000,
        ));
        let at = datetime!(2026-01-01 00:00:00.007 UTC);
        assert!(id >= lowest_id_from(at));
        assert!(id < lowest_id_from(at + time::Duration::nanoseconds(1)));
        assert!(id >= lowest_id_from(at - time::Duration::microseconds(999)));
        assert_eq!(
            lowest_id_from(datetime!(1969-12-31 23:59:59 UTC)),
            Uuid::nil()
        );
    }

    #[test]
    fn only_the_hyphenated_form_is_an_id() {
        assert!(parse_id("019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e").is_ok());
        assert!(parse_id("019AC9F0-7C1E-7A4B-9D0E-2F1C3B4A5D6E").is_ok());
        assert!(parse_id("019ac9f07c1e7a4b9d0e2f1c3b4a5d6e").is_err());
        assert!(parse_id("{019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e}").is_err());
        assert!(parse_id("nope").is_err());
    }
}
