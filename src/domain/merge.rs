//! Merge fields and variables: the name rule that a template's placeholders and an order's variables share, and
//! their limits.

use std::collections::BTreeMap;

/// The longest merge field name, in characters.
pub const MAX_MERGE_FIELD_LENGTH: usize = 100;
/// The most merge variables an order may carry for its template's fields.
pub const MAX_MERGE_VARIABLES: usize = 500;
/// The longest merge variable value, in characters.
pub const MAX_MERGE_VALUE_LENGTH: usize = 10_000;

/// The values a template's merge fields are filled with, by field name.
pub type MergeVariables = BTreeMap<String, String>;

/// Merge variables: at most 500, named like merge fields, values of at most 10 000 characters.
pub fn parse_merge_variables(variables: MergeVariables) -> Result<MergeVariables, String> {
    if variables.len() > MAX_MERGE_VARIABLES {
        return Err(format!("must have at most {MAX_MERGE_VARIABLES} entries"));
    }
    for (name, value) in &variables {
        if let Err(reason) = parse_merge_field_name(name) {
            return Err(format!(
                "`{}`: {reason}",
                name.chars()
                    .take(MAX_MERGE_FIELD_LENGTH)
                    .collect::<String>()
            ));
        }
        if value.chars().count() > MAX_MERGE_VALUE_LENGTH {
            return Err(format!(
                "`{name}`: values have at most {MAX_MERGE_VALUE_LENGTH} characters"
            ));
        }
        if value.contains('\0') {
            return Err(format!(
                "`{name}`: values must not contain NUL characters (U+0000)"
            ));
        }
    }
    Ok(variables)
}

/// The merge fields of a template that `variables` does not supply.
pub fn missing_merge_variables(merge_fields: &[String], variables: &MergeVariables) -> Vec<String> {
    merge_fields
        .iter()
        .filter(|field| !variables.contains_key(field.as_str()))
        .cloned()
        .collect()
}

/// A merge field name: a [field name](is_field_name) that starts with a letter or `_`.
pub fn parse_merge_field_name(name: &str) -> Result<(), String> {
    let valid_start = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    if !valid_start || !is_field_name(name) {
        return Err(format!(
            "a merge field name is 1 to {MAX_MERGE_FIELD_LENGTH} letters, digits, `_`, `-` or `.`, starting with a letter or `_`"
        ));
    }
    Ok(())
}

/// 1 to 100 letters, digits, `_`, `-` and `.`: what merge field names are made of, and the names a batch column
/// gives a merge variable or metadata key, which keeps a derived key's field list free of its separators.
pub fn is_field_name(name: &str) -> bool {
    (1..=MAX_MERGE_FIELD_LENGTH).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_missing_merge_variables_in_field_order() {
        let fields = vec!["city".to_owned(), "first_name".to_owned()];
        let variables = MergeVariables::from([("first_name".to_owned(), "Anna".to_owned())]);
        assert_eq!(missing_merge_variables(&fields, &variables), ["city"]);
    }

    #[test]
    fn merge_variable_values_hold_no_nul() {
        let bad = MergeVariables::from([("name".to_owned(), "a\0b".to_owned())]);
        assert!(parse_merge_variables(bad).is_err());
    }

    #[test]
    fn merge_variable_names_follow_the_placeholder_rules() {
        let bad = MergeVariables::from([("first name".to_owned(), "Anna".to_owned())]);
        assert!(parse_merge_variables(bad).is_err());
    }
}
