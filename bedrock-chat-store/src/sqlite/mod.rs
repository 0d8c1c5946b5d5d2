//! [`SqliteHistoryStore`]: an embedded, persistent store in one SQLite file (feature
//! `sqlite`).
//!
//! # Schema
//! Three tables, created by the migrations in `migrations/sqlite/` (embedded in the binary
//! and applied on connect unless [`SqliteConfig::run_migrations`] is off):
//!
//! - `conversations (id, user_id, title, system_prompt, metadata, message_count, last_seq,
//!   created_at, updated_at)`, indexed by `(user_id, updated_at, id)` so a user's
//!   conversations list newest first by last activity with a range scan;
//! - `messages (user_id, id, chat_id, seq, role, content, reply_to, model, input_tokens,
//!   output_tokens, total_tokens, metadata, created_at, updated_at, parts,
//!   cache_read_tokens, cache_write_tokens)`, keyed by
//!   `(user_id, id)` (message ids are scoped per user) and unique on `(chat_id, seq)`, which
//!   is also the index that pages through a conversation either way. Deleting a
//!   conversation deletes its messages (`ON DELETE CASCADE`). `parts` is the message's
//!   parts as JSON, NULL for a plain-text message; the cache counts are NULL when 0;
//! - `usage_ledger (user_id, day, input_tokens, output_tokens, total_tokens,
//!   cache_read_tokens, cache_write_tokens, calls)`, one
//!   row per user and UTC day (`YYYY-MM-DD`) plus one with `day = 'total'`, untouched by
//!   deletes.
//!
//! Ids are UUID text, times microseconds since the Unix epoch, metadata JSON text.
//! Text is stored byte for byte, NUL characters included.
//!
//! # Concurrency
//! A file database runs in WAL mode: readers never wait for the writer. Writes go through
//! one connection and start with `BEGIN IMMEDIATE`, so they queue instead of failing, and
//! the busy timeout covers other processes writing the same file.
//!
//! An in-memory database (`sqlite::memory:`) lives as long as its connection, and each
//! connection would see a database of its own, so the store keeps exactly one connection
//! open for reads and writes, for its whole life.
//!
//! # Example
//! ```no_run
//! use bedrock_chat_core::{HistoryStore, NewConversation, UserId};
//! use bedrock_chat_store::{SqliteConfig, SqliteHistoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqliteHistoryStore::connect(SqliteConfig::new("sqlite://chats.db")).await?;
//! let alice = UserId::new("alice")?;
//! let chat = store.create_conversation(&alice, NewConversation::new("Trip plans")).await?;
//! assert_eq!(store.get_conversation(&alice, chat.id).await?.title, "Trip plans");
//! # Ok(()) }
//! ```

mod error;
mod rows;
mod store;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bedrock_chat_core::{Clock, StoreError, SystemClock};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use self::error::classify;

const BACKEND: &str = "sqlite";

/// The embedded migrations of the SQLite schema.
fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations/sqlite");
    // A database already migrated by a newer release stays usable by this one (rolling
    // upgrades): migrations only ever add, so the older code still finds what it needs.
    migrator.set_ignore_missing(true);
    migrator
}

/// How to open a [`SqliteHistoryStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// The database: `sqlite://path/to/file.db` (created if missing), `sqlite::memory:`, or
    /// any URL [`SqliteConnectOptions`] accepts.
    pub url: String,
    /// Connections for reads from a file database (at least 1). Writes always use one
    /// connection of their own; an in-memory database uses one connection for everything.
    pub max_connections: u32,
    /// How long to wait for a connection from the pool, and for another process's write
    /// lock on the file, before giving up with [`StoreError::Unavailable`].
    pub busy_timeout: Duration,
    /// Whether [`SqliteHistoryStore::connect`] applies pending migrations.
    pub run_migrations: bool,
}

impl SqliteConfig {
    /// Settings for `url` with 4 reader connections, a 5 s busy timeout, and migrations
    /// applied on connect.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 4,
            busy_timeout: Duration::from_secs(5),
            run_migrations: true,
        }
    }

    /// An in-memory database, lost when the store is dropped.
    pub fn in_memory() -> Self {
        Self::new("sqlite::memory:")
    }

    /// Sets [`max_connections`](Self::max_connections).
    pub fn with_max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`busy_timeout`](Self::busy_timeout).
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets [`run_migrations`](Self::run_migrations).
    pub fn with_run_migrations(mut self, run: bool) -> Self {
        self.run_migrations = run;
        self
    }

    fn is_in_memory(&self) -> bool {
        self.url.contains(":memory:") || self.url.contains("mode=memory")
    }
}

/// A [`HistoryStore`](bedrock_chat_core::HistoryStore) in SQLite: embedded and persistent,
/// for one machine (a CLI, a desktop app, a single server). See the [module
/// docs](self) for the schema.
///
/// Cloning gives another handle to the same database.
#[derive(Clone, Debug)]
pub struct SqliteHistoryStore {
    /// The one connection that writes (SQLite allows one writer at a time anyway).
    writer: SqlitePool,
    /// Connections for reads; the writer itself for an in-memory database.
    reader: SqlitePool,
    clock: Arc<dyn Clock>,
}

impl SqliteHistoryStore {
    /// Opens the database with [`SqliteConfig::new`]`(url)`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::connect(SqliteConfig::new(url)).await
    }

    /// Opens the database, creating the file if it is missing, and applies pending
    /// migrations unless told not to.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for a URL that is not a SQLite URL;
    /// [`StoreError::Unavailable`] when the file cannot be opened;
    /// [`StoreError::Backend`] when a migration fails.
    pub async fn connect(config: SqliteConfig) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(&config.url)
            .map_err(|e| {
                bedrock_chat_core::InvalidInput::new("url", format!("not a SQLite URL: {e}"))
            })?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(config.busy_timeout);
        let (writer, reader) = if config.is_in_memory() {
            // The database dies with its last connection: keep exactly one, forever.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(config.busy_timeout)
                .connect_with(options)
                .await
                .map_err(classify)?;
            (pool.clone(), pool)
        } else {
            let options = options
                .journal_mode(SqliteJournalMode::Wal)
                // WAL makes NORMAL durable across application crashes, and much faster.
                .synchronous(SqliteSynchronous::Normal);
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(config.busy_timeout)
                .connect_with(options.clone())
                .await
                .map_err(classify)?;
            let reader = SqlitePoolOptions::new()
                .max_connections(config.max_connections.max(1))
                .acquire_timeout(config.busy_timeout)
                .connect_with(options)
                .await
                .map_err(classify)?;
            (writer, reader)
        };
        if config.run_migrations {
            migrator()
                .run(&writer)
                .await
                .map_err(error::classify_migration)?;
        }
        Ok(Self {
            writer,
            reader,
            clock: Arc::new(SystemClock),
        })
    }

    /// Stamps times from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Closes every connection; an in-memory database is gone afterwards.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
