//! How SQLite failures map to [`StoreError`]: one place decides what is retryable.

use bedrock_chat_core::StoreError;
use sqlx::error::ErrorKind;
use sqlx::migrate::MigrateError;

use super::BACKEND;

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
    match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => unavailable(error),
        sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => {
            StoreError::Conflict {
                message: db.message().to_owned(),
            }
        }
        sqlx::Error::Database(db) => {
            let primary = db
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .map(|code| code & 0xff);
            match primary {
                Some(
                    SQLITE_BUSY | SQLITE_LOCKED | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN,
                ) => unavailable(error),
                _ => backend(error),
            }
        }
        _ => backend(error),
    }
}

/// Maps a migration failure: the database out of reach stays
/// [`StoreError::Unavailable`]; anything else (a migration that fails, a database changed
/// by hand) is [`StoreError::Backend`].
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
