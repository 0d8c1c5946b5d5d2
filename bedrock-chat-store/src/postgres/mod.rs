//! [`PostgresHistoryStore`]: conversations in PostgreSQL (feature `postgres`), shared by
//! any number of servers.
//!
//! # Schema
//! Created by the migrations in `migrations/postgres/` (embedded in the binary, applied on
//! connect unless [`PostgresConfig::run_migrations`] is off; later migrations only add):
//!
//! - `conversations (id uuid, user_id text, title text, system_prompt text, metadata jsonb,
//!   message_count bigint, last_seq bigint, created_at timestamptz, updated_at
//!   timestamptz)`, indexed by `(user_id, updated_at, id)`: one page of a user's
//!   conversations, newest first by last activity, is a backwards index range scan;
//! - `messages (user_id text, id uuid, chat_id uuid, seq bigint, role text, content text,
//!   reply_to uuid, model text, input_tokens bigint, output_tokens bigint, total_tokens
//!   bigint, metadata jsonb, created_at timestamptz, updated_at timestamptz, parts jsonb,
//!   cache_read_tokens bigint, cache_write_tokens bigint)`, keyed by
//!   `(user_id, id)` (message ids are scoped per user) and unique on `(chat_id, seq)`: the
//!   last N messages or a page of them, either way, is an index range scan. Deleting a
//!   conversation deletes its messages (`ON DELETE CASCADE`). `parts` is NULL for a
//!   plain-text message and the cache counts are NULL when 0, so plain messages cost what
//!   they did before; an edit of a message with parts replaces its text parts in the same
//!   statement (`bedrock_chat_replace_text`).
//! - `usage_days (user_id, day date, input_tokens, output_tokens, total_tokens,
//!   cache_read_tokens, cache_write_tokens, calls)` and
//!   `usage_totals (user_id, ...)`: the usage ledger, per UTC day and all time, untouched by
//!   deletes; one statement records a call in both.
//! - the function `bedrock_chat_append(...)`: an append is one statement, so one round trip
//!   and one transaction. It locks the conversation row (`FOR UPDATE`), creates the
//!   conversation when asked, checks the message ids for an idempotent retry or a
//!   conflict, takes the next sequence numbers from `last_seq`, inserts the messages and
//!   returns them. Concurrent appends to one conversation take turns on the row lock.
//!
//! PostgreSQL `text` and `jsonb` cannot hold NUL (`\0`): text, parts or metadata containing one
//! is refused with [`StoreError::InvalidInput`] before anything is written.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use bedrock_chat_core::{HistoryStore, NewConversation, UserId};
//! use bedrock_chat_store::{PostgresConfig, PostgresHistoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = PostgresConfig::new("postgres://chat@localhost/chat")
//!     .with_max_connections(20)
//!     .with_acquire_timeout(Duration::from_secs(3));
//! let store = PostgresHistoryStore::connect(config).await?;
//! let alice = UserId::new("alice")?;
//! let chat = store.create_conversation(&alice, NewConversation::new("Trip plans")).await?;
//! assert_eq!(store.get_conversation(&alice, chat.id).await?.title, "Trip plans");
//! # Ok(()) }
//! ```

mod error;
mod input;
mod rows;
mod store;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bedrock_chat_core::{Clock, InvalidInput, StoreError, SystemClock};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use self::error::{classify, classify_migration};

const BACKEND: &str = "postgres";

/// The embedded migrations of the PostgreSQL schema.
fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    // A database already migrated by a newer release stays usable by this one (rolling
    // upgrades): migrations only ever add, so the older code still finds what it needs.
    migrator.set_ignore_missing(true);
    migrator
}

/// How to connect a [`PostgresHistoryStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// The database, as a `postgres://user:password@host:port/database` URL.
    pub url: String,
    /// The most connections the pool opens.
    pub max_connections: u32,
    /// Connections the pool keeps open even when idle.
    pub min_connections: u32,
    /// How long an operation waits for a free connection (or a new one) before it fails
    /// with [`StoreError::Unavailable`].
    pub acquire_timeout: Duration,
    /// Whether [`PostgresHistoryStore::connect`] applies pending migrations.
    pub run_migrations: bool,
    /// Whether the pool checks each connection with an extra round trip before handing
    /// it out. Off by default, so that an append stays one round trip; a connection that
    /// broke while idle then fails one operation with [`StoreError::Unavailable`] (which
    /// is retryable) and is replaced.
    pub test_before_acquire: bool,
    /// The `application_name` the connections report (`pg_stat_activity`).
    pub application_name: String,
}

impl PostgresConfig {
    /// Settings for `url`: up to 10 connections, a 5 s acquire timeout, migrations applied
    /// on connect.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            run_migrations: true,
            test_before_acquire: false,
            application_name: String::from("bedrock-chat"),
        }
    }

    /// Sets [`max_connections`](Self::max_connections).
    pub fn with_max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`min_connections`](Self::min_connections).
    pub fn with_min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// Sets [`acquire_timeout`](Self::acquire_timeout).
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets [`run_migrations`](Self::run_migrations).
    pub fn with_run_migrations(mut self, run: bool) -> Self {
        self.run_migrations = run;
        self
    }

    /// Sets [`test_before_acquire`](Self::test_before_acquire).
    pub fn with_test_before_acquire(mut self, test: bool) -> Self {
        self.test_before_acquire = test;
        self
    }

    /// Sets [`application_name`](Self::application_name).
    pub fn with_application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }
}

/// A [`HistoryStore`](bedrock_chat_core::HistoryStore) in PostgreSQL: durable, shared by
/// every server process, each append one round trip. See the [module docs](self) for the
/// schema.
///
/// Cloning gives another handle to the same pool.
#[derive(Clone, Debug)]
pub struct PostgresHistoryStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl PostgresHistoryStore {
    /// Connects with [`PostgresConfig::new`]`(url)`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::connect(PostgresConfig::new(url)).await
    }

    /// Opens a pool, checks that the server answers, and applies pending migrations unless
    /// told not to.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for a URL that is not a PostgreSQL URL;
    /// [`StoreError::Unavailable`] when the server does not answer;
    /// [`StoreError::Backend`] when a migration fails or the login is refused.
    pub async fn connect(config: PostgresConfig) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(&config.url)
            .map_err(|e| InvalidInput::new("url", format!("not a PostgreSQL URL: {e}")))?
            .application_name(&config.application_name);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .test_before_acquire(config.test_before_acquire)
            .connect_with(options)
            .await
            .map_err(classify)?;
        let store = Self::from_pool(pool);
        if config.run_migrations {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Uses a pool the application made; applies no migrations (see
    /// [`migrate`](Self::migrate)).
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            clock: Arc::new(SystemClock),
        }
    }

    /// Applies pending migrations. Safe to run from several processes at once: they take
    /// turns on an advisory lock.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the server does not answer;
    /// [`StoreError::Backend`] when a migration fails.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrator().run(&self.pool).await.map_err(classify_migration)
    }

    /// Stamps times from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The connection pool, for health checks or metrics.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
