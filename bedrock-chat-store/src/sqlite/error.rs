//! How SQLite failures map to [`StoreError`]: the shared sqlx mapping
//! ([`SqlDialect`]) with SQLite's own result codes.

use bedrock_chat_core::StoreError;
use sqlx::migrate::MigrateError;

use super::BACKEND;
use crate::sql_error::SqlDialect;

const DIALECT: SqlDialect = SqlDialect {
    backend: BACKEND,
    is_transient,
};

// Primary result codes (the low byte of an extended code) that mean "not now" rather than
// "never": https://www.sqlite.org/rescode.html
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;

/// Maps a driver error: the pool or file out of reach, or the database busy past the
/// timeout, is [`StoreError::Unavailable`]; a taken id is [`StoreError::Conflict`];
/// anything else is [`StoreError::Backend`].
pub(super) fn classify(error: sqlx::Error) -> StoreError {
    DIALECT.classify(error)
}

/// Maps a migration failure; see [`SqlDialect::classify_migration`].
pub(super) fn classify_migration(error: MigrateError) -> StoreError {
    DIALECT.classify_migration(error)
}

/// A result code (primary or extended) whose primary code means busy, locked, an I/O
/// error, a full disk or a file that cannot be opened.
fn is_transient(code: &str) -> bool {
    code.parse::<i64>().is_ok_and(|code| {
        matches!(
            code & 0xff,
            SQLITE_BUSY | SQLITE_LOCKED | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_told_apart() {
        // SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT, SQLITE_LOCKED_SHAREDCACHE, SQLITE_IOERR_READ,
        // SQLITE_FULL, SQLITE_CANTOPEN.
        for code in ["5", "517", "262", "266", "13", "14"] {
            assert!(is_transient(code), "{code}");
        }
        // SQLITE_ERROR, SQLITE_CONSTRAINT_UNIQUE, SQLITE_READONLY, not a number.
        for code in ["1", "2067", "8", "HY000"] {
            assert!(!is_transient(code), "{code}");
        }
    }

    #[test]
    fn pool_timeouts_are_unavailable() {
        assert!(matches!(
            classify(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable {
                backend: "sqlite",
                ..
            }
        ));
    }
}
