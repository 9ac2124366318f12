//! Patch: a member of a PATCH body, which may be absent, `null`, or a new value.

use serde::{Deserialize, Deserializer};

/// A PATCH member: absent leaves the value as it is, `null` clears it, anything else replaces it.
///
/// Use with `#[serde(default)]` so that an absent member becomes `Unchanged`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    #[default]
    Unchanged,
    Clear,
    Set(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            None => Self::Clear,
            Some(value) => Self::Set(value),
        })
    }
}

impl<T> Patch<T> {
    /// For members that cannot be cleared: `null` is an error.
    pub fn required(self) -> Result<Option<T>, String> {
        match self {
            Self::Unchanged => Ok(None),
            Self::Clear => Err("must not be null".to_owned()),
            Self::Set(value) => Ok(Some(value)),
        }
    }

    /// The value after the patch, for members that can be cleared.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Unchanged => current,
            Self::Clear => None,
            Self::Set(value) => Some(value),
        }
    }
}
