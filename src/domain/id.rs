//! Object ids: UUIDs, written in their hyphenated form.

use uuid::Uuid;

/// An id as the API writes them: 36 characters, `8-4-4-4-12` hex digits.
pub fn parse_id(id: &str) -> Result<Uuid, String> {
    let malformed = || "must be an id: a UUID like 019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e".to_owned();
    if id.len() != 36 {
        return Err(malformed());
    }
    Uuid::try_parse(id).map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hyphenated_form_is_an_id() {
        assert!(parse_id("019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e").is_ok());
        assert!(parse_id("019AC9F0-7C1E-7A4B-9D0E-2F1C3B4A5D6E").is_ok());
        assert!(parse_id("019ac9f07c1e7a4b9d0e2f1c3b4a5d6e").is_err());
        assert!(parse_id("{019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e}").is_err());
        assert!(parse_id("nope").is_err());
    }
}
