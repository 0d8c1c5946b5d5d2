//! How sqlx failures map to [`StoreError`], shared by the SQLite and PostgreSQL stores:
//! one place decides what is retryable, and each backend names only the database codes of
//! its own dialect that mean "not now" rather than "never".

use bedrock_chat_core::StoreError;
use sqlx::error::ErrorKind;
use sqlx::migrate::MigrateError;

/// What differs between the SQL backends when classifying their errors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SqlDialect {
    /// The backend's name, as errors report it.
    pub(crate) backend: &'static str,
    /// Whether a database error with this code (SQLite's result code, PostgreSQL's
    /// SQLSTATE) can succeed when the same call is made again.
    pub(crate) is_transient: fn(&str) -> bool,
}

impl SqlDialect {
    /// Maps a driver error: the pool or server out of reach, or a database error whose
    /// code the dialect calls transient, is [`StoreError::Unavailable`]; a unique
    /// violation (a taken id) is [`StoreError::Conflict`]; anything else is
    /// [`StoreError::Backend`].
    pub(crate) fn classify(&self, error: sqlx::Error) -> StoreError {
        match &error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => self.unavailable(error),
            sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => {
                StoreError::Conflict {
                    message: db.message().to_owned(),
                }
            }
            sqlx::Error::Database(db) if db.code().is_some_and(|c| (self.is_transient)(&c)) => {
                self.unavailable(error)
            }
            _ => self.backend(error),
        }
    }

    /// Maps a migration failure: the database out of reach stays
    /// [`StoreError::Unavailable`]; anything else (a migration that fails, a database
    /// changed by hand) is [`StoreError::Backend`].
    pub(crate) fn classify_migration(&self, error: MigrateError) -> StoreError {
        match error {
            MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => self.classify(e),
            other => StoreError::Backend {
                backend: self.backend,
                source: Box::new(other),
            },
        }
    }

    fn unavailable(&self, error: sqlx::Error) -> StoreError {
        StoreError::Unavailable {
            backend: self.backend,
            source: Box::new(error),
        }
    }

    fn backend(&self, error: sqlx::Error) -> StoreError {
        StoreError::Backend {
            backend: self.backend,
            source: Box::new(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIALECT: SqlDialect = SqlDialect {
        backend: "test-sql",
        is_transient: |_| false,
    };

    #[test]
    fn pool_failures_are_unavailable_and_name_the_backend() {
        for error in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
        ] {
            assert!(
                matches!(
                    DIALECT.classify(error),
                    StoreError::Unavailable {
                        backend: "test-sql",
                        ..
                    }
                ),
                "unavailable"
            );
        }
    }

    #[test]
    fn other_driver_errors_are_backend_errors() {
        assert!(matches!(
            DIALECT.classify(sqlx::Error::RowNotFound),
            StoreError::Backend {
                backend: "test-sql",
                ..
            }
        ));
    }

    #[test]
    fn a_migration_that_cannot_reach_the_database_is_unavailable() {
        let error = MigrateError::Execute(sqlx::Error::PoolTimedOut);
        assert!(matches!(
            DIALECT.classify_migration(error),
            StoreError::Unavailable { .. }
        ));
        let error = MigrateError::VersionMissing(3);
        assert!(matches!(
            DIALECT.classify_migration(error),
            StoreError::Backend { .. }
        ));
    }
}
