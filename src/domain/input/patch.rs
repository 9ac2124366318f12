//! Patch: a member of a PATCH body, which may be absent, `null`, or a new value.

/// A change to a value that can be cleared: left as it is, cleared, or replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    #[default]
    Unchanged,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    /// The value after the patch, for members that can be cleared.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Unchanged => current,
            Self::Clear => None,
            Self::Set(value) => Some(value),
        }
    }
}
