//! Metadata: the client's own key/value pairs on orders and templates, such as a customer id or a campaign.

use std::collections::BTreeMap;

use super::{input::patch::Patch, input::validation::Validator};

/// The most keys an object's metadata may hold (Stripe's and Lob's limit).
pub const MAX_METADATA_KEYS: usize = 20;
/// The longest metadata key, in characters (Stripe's and Lob's limit).
pub const MAX_METADATA_KEY_LENGTH: usize = 40;
/// The longest metadata value, in characters (Stripe's and Lob's limit).
pub const MAX_METADATA_VALUE_LENGTH: usize = 500;

/// Metadata: string values by key, `{}` when none were set.
pub type Metadata = BTreeMap<String, String>;

/// The metadata members of a PATCH: a key with a value sets it, a key with `null` removes it.
pub type MetadataChanges = BTreeMap<String, Option<String>>;

/// Checks metadata under the field `metadata`: at most 20 keys of 1 to 40 characters without `[` or `]` (they
/// delimit the key in `?metadata[key]=value`), values of at most 500 characters; no NUL characters, which
/// PostgreSQL's jsonb cannot hold.
pub fn parse_metadata(v: &mut Validator, metadata: Metadata) -> Option<Metadata> {
    let count = v.check("metadata", check_count(metadata.len()));
    let entries = v.nested("metadata", |v| {
        let mut valid = true;
        for (key, value) in &metadata {
            valid &= v.check(key, check_entry(key, Some(value))).is_some();
        }
        valid.then_some(())
    });
    count.and(entries).map(|()| metadata)
}

/// Checks the members of a metadata PATCH, as [`parse_metadata`] does; a `null` value is allowed.
pub fn parse_metadata_changes(
    v: &mut Validator,
    changes: Patch<MetadataChanges>,
) -> Option<Patch<MetadataChanges>> {
    let Patch::Set(changes) = changes else {
        return Some(changes);
    };
    let entries = v.nested("metadata", |v| {
        let mut valid = true;
        for (key, value) in &changes {
            valid &= v.check(key, check_entry(key, value.as_deref())).is_some();
        }
        valid.then_some(())
    });
    entries.map(|()| Patch::Set(changes))
}

/// The metadata after a PATCH: `null` clears it, an object merges into it, and the result holds at most 20 keys.
pub fn merge_metadata(
    current: &Metadata,
    changes: Patch<MetadataChanges>,
) -> Result<Metadata, String> {
    let merged = match changes {
        Patch::Unchanged => current.clone(),
        Patch::Clear => Metadata::new(),
        Patch::Set(changes) => {
            let mut merged = current.clone();
            for (key, value) in changes {
                match value {
                    Some(value) => merged.insert(key, value),
                    None => merged.remove(&key),
                };
            }
            merged
        }
    };
    check_count(merged.len())?;
    Ok(merged)
}

fn check_count(count: usize) -> Result<(), String> {
    if count > MAX_METADATA_KEYS {
        return Err(format!("must have at most {MAX_METADATA_KEYS} keys"));
    }
    Ok(())
}

/// Checks one key and, when given, its value.
pub fn check_entry(key: &str, value: Option<&str>) -> Result<(), String> {
    let length = key.chars().count();
    if length == 0 || length > MAX_METADATA_KEY_LENGTH {
        return Err(format!(
            "keys are 1 to {MAX_METADATA_KEY_LENGTH} characters"
        ));
    }
    if key.contains(['[', ']', '\0']) {
        return Err("keys must not contain `[`, `]` or NUL characters".to_owned());
    }
    if let Some(value) = value {
        if value.chars().count() > MAX_METADATA_VALUE_LENGTH {
            return Err(format!(
                "values have at most {MAX_METADATA_VALUE_LENGTH} characters"
            ));
        }
        if value.contains('\0') {
            return Err("values must not contain NUL characters (U+0000)".to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&str, &str)]) -> Metadata {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_patch_merges_and_null_removes() {
        let current = metadata(&[("customer_id", "4711"), ("campaign", "winter")]);
        let changes = MetadataChanges::from([
            ("campaign".to_owned(), None),
            ("source".to_owned(), Some("web".to_owned())),
        ]);
        assert_eq!(
            merge_metadata(&current, Patch::Set(changes)),
            Ok(metadata(&[("customer_id", "4711"), ("source", "web")]))
        );
        assert_eq!(merge_metadata(&current, Patch::Clear), Ok(Metadata::new()));
        assert_eq!(merge_metadata(&current, Patch::Unchanged), Ok(current));
    }

    #[test]
    fn a_merge_may_not_grow_past_twenty_keys() {
        let current: Metadata = (0..20).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let one_more = MetadataChanges::from([("k20".to_owned(), Some("v".to_owned()))]);
        assert!(merge_metadata(&current, Patch::Set(one_more)).is_err());
    }

    #[test]
    fn keys_and_values_have_limits() {
        assert!(check_entry(&"k".repeat(40), Some(&"v".repeat(500))).is_ok());
        assert!(check_entry(&"k".repeat(41), Some("v")).is_err());
        assert!(check_entry("", Some("v")).is_err());
        assert!(check_entry("a[b]", Some("v")).is_err());
        assert!(check_entry("k", Some(&"v".repeat(501))).is_err());
        assert!(check_entry("k", None).is_ok());
    }
}
