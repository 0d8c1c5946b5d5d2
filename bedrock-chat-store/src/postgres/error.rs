//! How PostgreSQL failures map to [`StoreError`]: the shared sqlx mapping
//! ([`SqlDialect`]) with PostgreSQL's own SQLSTATEs.

use bedrock_chat_core::StoreError;
use sqlx::migrate::MigrateError;

use super::BACKEND;
use crate::sql_error::SqlDialect;

const DIALECT: SqlDialect = SqlDialect {
    backend: BACKEND,
    is_transient,
};

/// Maps a driver error: the server out of reach, shutting down, out of connections or
/// asking for a retry is [`StoreError::Unavailable`]; a unique violation (a taken id, or
/// the append function's refusal) is [`StoreError::Conflict`]; anything else is
/// [`StoreError::Backend`].
pub(super) fn classify(error: sqlx::Error) -> StoreError {
    DIALECT.classify(error)
}

/// Maps a migration failure; see [`SqlDialect::classify_migration`].
pub(super) fn classify_migration(error: MigrateError) -> StoreError {
    DIALECT.classify_migration(error)
}

/// SQLSTATEs after which the same call can succeed: connection exceptions (08), too many
/// connections and other resource limits (53), the server shutting down or the session
/// terminated (57P0x), and serialization failures and deadlocks (40001, 40P01).
/// <https://www.postgresql.org/docs/current/errcodes-appendix.html>
fn is_transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || code == "40001"
        || code == "40P01"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_told_apart() {
        for code in ["08006", "53300", "57P01", "57P03", "40001", "40P01"] {
            assert!(is_transient(code), "{code}");
        }
        for code in ["23505", "42P01", "22P05", "XX000"] {
            assert!(!is_transient(code), "{code}");
        }
    }

    #[test]
    fn pool_timeouts_are_unavailable() {
        assert!(matches!(
            classify(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable {
                backend: "postgres",
                ..
            }
        ));
        assert!(matches!(
            classify(sqlx::Error::RowNotFound),
            StoreError::Backend {
                backend: "postgres",
                ..
            }
        ));
    }
}
