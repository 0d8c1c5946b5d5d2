//! How PostgreSQL failures map to [`StoreError`]: one place decides what is retryable.

use bedrock_chat_core::StoreError;
use sqlx::error::ErrorKind;
use sqlx::migrate::MigrateError;

use super::BACKEND;

/// Maps a driver error: the server out of reach, shutting down, out of connections or
/// asking for a retry is [`StoreError::Unavailable`]; a unique violation (a taken id, or
/// the append function's refusal) is [`StoreError::Conflict`]; anything else is
/// [`StoreError::Backend`].
pub(super) fn classify(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => unavailable(error),
        sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => {
            StoreError::Conflict {
                message: db.message().to_owned(),
            }
        }
        sqlx::Error::Database(db) if db.code().is_some_and(|code| is_transient(&code)) => {
            unavailable(error)
        }
        _ => backend(error),
    }
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

/// Maps a migration failure: the server out of reach stays [`StoreError::Unavailable`];
/// anything else (a migration that fails, a database changed by hand) is
/// [`StoreError::Backend`].
pub(super) fn classify_migration(error: MigrateError) -> StoreError {
    match error {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => classify(e),
        other => StoreError::Backend {
            backend: BACKEND,
            source: Box::new(other),
        },
    }
}

fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable {
        backend: BACKEND,
        source: Box::new(error),
    }
}

fn backend(error: sqlx::Error) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        source: Box::new(error),
    }
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
