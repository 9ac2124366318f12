//! The one mapping of database errors to problems (by SQLSTATE, then by violated constraint), and of a failed COMMIT.

use super::ApiError;
use crate::domain::{
    input::validation::length_rule,
    metadata::{MAX_METADATA_KEY_LENGTH, MAX_METADATA_KEYS, MAX_METADATA_VALUE_LENGTH},
    template::{MAX_NAME_LENGTH, content_size_rule},
};

impl ApiError {
    /// A failed COMMIT. When the connection failed, the database may have committed before the acknowledgement
    /// was lost, so the outcome is unknown; any other failure of a COMMIT rolled the transaction back.
    pub fn from_commit(error: sqlx::Error) -> Self {
        match Self::from(error) {
            Self::DatabaseUnavailable(source) => {
                tracing::warn!(error = %source, "the commit's acknowledgement was lost");
                Self::OutcomeUnknown(
                    "The connection to the database failed while the request committed; it may or may not be \
                     applied. Retry with the same Idempotency-Key to learn its outcome; without a key, a blind \
                     retry may apply it twice."
                        .to_owned(),
                )
            }
            error => error,
        }
    }
}

/// The one place where database errors become problems: by SQLSTATE, then by the name of a violated constraint.
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if is_unreachable(&error) {
            return Self::DatabaseUnavailable(error);
        }
        let Some(db) = error.as_database_error() else {
            return Self::Internal(Box::new(error));
        };
        let passing = db.code().as_deref().and_then(passing_failure);
        match passing {
            Some(Passing::Unavailable) => return Self::DatabaseUnavailable(error),
            Some(Passing::Busy) => return Self::ResourceBusy,
            None => {}
        }
        if let Some((field, rule)) = crate::db::violated_constraint(&error).and_then(checked_rule) {
            return Self::invalid_field(field, rule);
        }
        Self::Internal(Box::new(error))
    }
}

/// A database failure after which nothing was written and the same request may simply be sent again: the
/// database rolled the request's transaction back for a reason of the moment, not for what the request asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Passing {
    /// The database cannot serve the request now (503).
    Unavailable,
    /// Another request held a row too long, or a conflict with one was broken by rolling this one back (409).
    Busy,
}

/// The passing failure a SQLSTATE (PostgreSQL, Appendix A) stands for; `None` for a failure that is the request's
/// outcome.
fn passing_failure(code: &str) -> Option<Passing> {
    match code {
        // Class 08: connection exception.
        _ if code.starts_with("08") => Some(Passing::Unavailable),
        // Class 53, insufficient resources: disk full, out of memory, too many connections.
        _ if code.starts_with("53") => Some(Passing::Unavailable),
        // query_canceled: `statement_timeout` (ours, or one an operator set on the database or role) or a cancel
        // request; admin_shutdown, crash_shutdown, cannot_connect_now; idle_session_timeout.
        "57014" | "57P01" | "57P02" | "57P03" | "57P05" => Some(Passing::Unavailable),
        // idle_in_transaction_session_timeout ended the session; its transaction rolled back.
        "25P03" => Some(Passing::Unavailable),
        // io_error: the server could not read or write a file.
        "58030" => Some(Passing::Unavailable),
        // Class 40, transaction rollback: serialization_failure, deadlock_detected and the like.
        _ if code.starts_with("40") => Some(Passing::Busy),
        // lock_not_available: `lock_timeout` ran out.
        "55P03" => Some(Passing::Busy),
        _ => None,
    }
}

/// True when the database could not be reached at all, before any statement ran.
fn is_unreachable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    )
}

/// The field and rule that a CHECK constraint of `migrations/` backs: the database is the last line of validation,
/// and a violation is the client's 422 like the handler's own check, in the domain's words.
fn checked_rule(constraint: &str) -> Option<(&'static str, String)> {
    let (field, rule) = match constraint {
        "template_versions_name_length" => ("name", length_rule(MAX_NAME_LENGTH)),
        "template_versions_format_known" => ("format", "is not a known format".to_owned()),
        "template_versions_content_size" => ("content", content_size_rule()),
        "templates_metadata_is_metadata" | "orders_metadata_is_metadata" => {
            ("metadata", metadata_rule())
        }
        "orders_recipient_is_address" => ("recipient", "is not a valid address".to_owned()),
        "orders_sender_is_address" => ("sender", "is not a valid address".to_owned()),
        "orders_merge_variables_is_string_map" => {
            ("merge_variables", "must map names to strings".to_owned())
        }
        "orders_send_date_not_before_creation" => {
            ("send_date", "must not be in the past".to_owned())
        }
        _ => return None,
    };
    Some((field, rule))
}

/// The whole metadata rule in one sentence, since a CHECK cannot say which of its parts failed.
fn metadata_rule() -> String {
    format!(
        "must have at most {MAX_METADATA_KEYS} keys of 1 to {MAX_METADATA_KEY_LENGTH} characters with string \
         values of at most {MAX_METADATA_VALUE_LENGTH} characters"
    )
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::http::error::ProblemType;

    #[test]
    fn sqlstates_of_passing_failures() {
        assert_eq!(passing_failure("08006"), Some(Passing::Unavailable));
        assert_eq!(passing_failure("57P01"), Some(Passing::Unavailable));
        assert_eq!(passing_failure("55P03"), Some(Passing::Busy));
        assert_eq!(passing_failure("40001"), Some(Passing::Busy));
        assert_eq!(passing_failure("40P01"), Some(Passing::Busy));
        assert_eq!(passing_failure("57014"), Some(Passing::Unavailable));
        assert_eq!(passing_failure("53100"), Some(Passing::Unavailable));
        assert_eq!(passing_failure("53300"), Some(Passing::Unavailable));
        assert_eq!(passing_failure("25P03"), Some(Passing::Unavailable));
        // check_violation and unique_violation are outcomes of the request.
        assert_eq!(passing_failure("23514"), None);
        assert_eq!(passing_failure("23505"), None);
        // undefined_table is a bug, not a passing condition.
        assert_eq!(passing_failure("42P01"), None);
    }

    #[test]
    fn check_constraints_answer_in_the_words_clients_have_always_seen() {
        let rule = |constraint| checked_rule(constraint).unwrap();
        assert_eq!(
            rule("template_versions_name_length"),
            ("name", "must be 1 to 200 characters".to_owned())
        );
        assert_eq!(
            rule("template_versions_content_size"),
            ("content", "must be 1 to 524288 bytes".to_owned())
        );
        let metadata = (
            "metadata",
            "must have at most 20 keys of 1 to 40 characters with string values of at most 500 characters"
                .to_owned(),
        );
        assert_eq!(rule("templates_metadata_is_metadata"), metadata);
        assert_eq!(rule("orders_metadata_is_metadata"), metadata);
        assert_eq!(checked_rule("orders_pkey"), None);
    }

    #[test]
    fn a_lost_commit_acknowledgement_is_an_unknown_outcome() {
        let lost =
            ApiError::from_commit(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()));
        assert_eq!(lost.problem_type(), ProblemType::OutcomeUnknown);
        assert_eq!(lost.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(!lost.is_stored());
        assert_eq!(lost.retry_after(), Some(1));
    }
}
