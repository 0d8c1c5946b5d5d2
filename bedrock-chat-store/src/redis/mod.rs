//! [`RedisHistoryStore`]: conversations in plain Redis 7 (feature `redis`), optionally
//! expiring: short-lived chat memory shared by every server process.
//!
//! # Key layout
//! Every key starts with the configured prefix `P` (default `bedrock-chat`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:chat:{chat_id}` | hash | `user`, `title`, `prompt` (absent when none), `meta` (metadata JSON), `count`, `last_seq`, `created` and `updated` (microseconds since the Unix epoch), `member` (its entry in the user's list) |
//! | `P:chat:{chat_id}:seq` | sorted set | message ids scored by sequence number: pages either way are `ZRANGE ... BYSCORE [REV]` |
//! | `P:chat:{chat_id}:msg` | hash | per message id `M`: `M` (role, reply-to, model, usage and creation time as JSON), `M:s` (seq), `M:c` (content), `M:m` (metadata JSON), `M:u` (last edit), `M:p` (its parts as JSON; absent for a plain-text message) |
//! | `P:user:{user_id}:msg:{message_id}` | string | the message's conversation id: the idempotency index, per user (message ids are scoped per user). Releases before kept one global `P:msg:{message_id}`; it is still read for their messages |
//! | `P:user:{user_id}:chats` | sorted set | the user's conversations, all scored 0, members `{time}:{chat_id}` where `{time}` is the time of the last change (`updated`) in microseconds as 20 order-preserving digits: listed newest first by last activity with `ZRANGE ... BYLEX REV`, ties by id, with keyset cursors; every change moves the member |
//! | `P:user:{user_id}:usage` | hash | the usage ledger: `in`, `out`, `total`, `calls`, and `cread` / `cwrite` (prompt-cache read / write tokens, absent until used) for all time, and `{day}:in`, ... per UTC day `YYYY-MM-DD`. Never expires, and deletes do not touch it |
//! | `P:user:{user_id}:usage:days` | sorted set | the days with usage, scored by days since 1970-01-01 |
//!
//! Every operation is one server-side Lua script (`EVALSHA`, loaded on first use), so
//! each is one round trip and atomic: an append checks ownership and idempotency, takes
//! the next sequence numbers, writes the messages and updates the conversation with
//! nothing in between. The scripts take the time as an argument, from the store's
//! [`Clock`]. They derive key names from the prefix, so they need a standalone Redis (or
//! one primary), not Redis Cluster.
//!
//! # Expiry
//! With [`RedisConfig::ttl`] set, each write to a conversation pushes the expiry of all
//! its keys (and of the user's list) to `ttl` from then: a conversation lives `ttl` after
//! its last change. The refresh touches one index key per message, so keep expiring
//! conversations short; that is what they are for. Entries of expired conversations are
//! dropped from the user's list as listings meet them.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use bedrock_chat_core::{HistoryStore, NewConversation, UserId};
//! use bedrock_chat_store::{RedisConfig, RedisHistoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RedisConfig::new("redis://127.0.0.1:6379/")
//!     .with_prefix("chat-memory")
//!     .with_ttl(Duration::from_secs(3600));
//! let store = RedisHistoryStore::connect(config).await?;
//! let alice = UserId::new("alice")?;
//! let chat = store.create_conversation(&alice, NewConversation::new("Trip plans")).await?;
//! assert_eq!(store.get_conversation(&alice, chat.id).await?.title, "Trip plans");
//! # Ok(()) }
//! ```

mod error;
mod rows;
mod scripts;
mod store;

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use bedrock_chat_core::{Clock, InvalidInput, StoreError, SystemClock};

use self::error::classify;
use self::scripts::Scripts;

const BACKEND: &str = "redis";

/// How to connect a [`RedisHistoryStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server, as a `redis://[user:password@]host:port/db` URL.
    pub url: String,
    /// What every key starts with, so several stores can share one server.
    pub prefix: String,
    /// When set, a conversation expires this long after its last change.
    pub ttl: Option<Duration>,
    /// How long to wait for a connection to the server.
    pub connection_timeout: Duration,
    /// How long to wait for an answer.
    pub response_timeout: Duration,
    /// How often to retry reconnecting after the connection broke, with exponential
    /// backoff, before calls fail with [`StoreError::Unavailable`].
    pub reconnect_retries: usize,
}

impl RedisConfig {
    /// Settings for `url`: prefix `bedrock-chat`, no expiry, 2 s to connect, 5 s to answer,
    /// 6 reconnect attempts.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: String::from("bedrock-chat"),
            ttl: None,
            connection_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            reconnect_retries: 6,
        }
    }

    /// Sets [`prefix`](Self::prefix).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`ttl`](Self::ttl).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets [`connection_timeout`](Self::connection_timeout).
    pub fn with_connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Sets [`response_timeout`](Self::response_timeout).
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sets [`reconnect_retries`](Self::reconnect_retries).
    pub fn with_reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }
}

/// A [`HistoryStore`](bedrock_chat_core::HistoryStore) in Redis: fast, shared by every
/// server process, optionally expiring. See the [module docs](self) for the key layout.
///
/// Cloning gives another handle to the same connection.
#[derive(Clone)]
pub struct RedisHistoryStore {
    connection: ConnectionManager,
    scripts: Arc<Scripts>,
    prefix: String,
    /// The expiry in milliseconds, 0 for none, as the scripts take it.
    ttl_millis: u64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RedisHistoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHistoryStore")
            .field("prefix", &self.prefix)
            .field("ttl_millis", &self.ttl_millis)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl RedisHistoryStore {
    /// Connects with [`RedisConfig::new`]`(url)`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::connect(RedisConfig::new(url)).await
    }

    /// Connects to the server. The connection reconnects by itself after the server went
    /// away; calls made while it is down fail with [`StoreError::Unavailable`].
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for a URL that is not a Redis URL, an empty prefix or
    /// a TTL under one millisecond; [`StoreError::Unavailable`] when the server does not
    /// answer.
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        if config.prefix.is_empty() {
            return Err(InvalidInput::new("prefix", "must not be empty").into());
        }
        let ttl_millis = match config.ttl {
            None => 0,
            Some(ttl) => match u64::try_from(ttl.as_millis()) {
                Ok(0) | Err(_) => {
                    return Err(
                        InvalidInput::new("ttl", "must be between 1 ms and u64::MAX ms").into(),
                    )
                }
                Ok(ms) => ms,
            },
        };
        let client = ::redis::Client::open(config.url.as_str())
            .map_err(|e| InvalidInput::new("url", format!("not a Redis URL: {e}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connection_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(config.reconnect_retries);
        let connection = ConnectionManager::new_with_config(client, manager_config)
            .await
            .map_err(classify)?;
        Ok(Self {
            connection,
            scripts: Arc::new(Scripts::new()),
            prefix: config.prefix,
            ttl_millis,
            clock: Arc::new(SystemClock),
        })
    }

    /// Stamps times from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}
