//! [`RedisRateLimiter`]: fixed windows counted in Redis, one round trip per decision.
//!
//! # Key layout
//! One string per key and window: `{prefix}:{window_ms}:{key}:{window_index}`, holding the
//! units spent. `window_index` is the caller's clock in milliseconds divided by the
//! window's length, so windows are aligned to the Unix epoch. Each counter expires a
//! window after its window ends; nothing needs cleaning up.
//!
//! # Atomicity and round trips
//! Every decision is one `EVALSHA` of a short Lua script (loaded again by the client when
//! Redis answers `NOSCRIPT`) that reads, compares and increments in one step on the server:
//! exact under any concurrency, from any number of processes.
//!
//! # Clocks
//! The window comes from the app server's clock (the injected [`Clock`]). Servers whose
//! clocks disagree by `d` may count a request in the neighbouring window during the first
//! or last `d` of a window, letting through up to one window's worth more at the boundary.
//! Keep servers on NTP (drift well under a second) and choose windows much longer than the
//! drift; the counters' time to live covers a window of drift.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bedrock_chat_core::limiter::{validate_key, Window};
use bedrock_chat_core::{Clock, Decision, Quota, RateLimitError, RateLimiter, SystemClock};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, ServerErrorKind};

const BACKEND: &str = "redis";

/// How to connect and name keys.
#[derive(Clone, Debug)]
pub struct RedisLimiterConfig {
    /// Starts every key; limiters with different quotas need different prefixes unless
    /// their windows differ.
    pub prefix: String,
    /// How long one command may take before the limiter reports `Unavailable`.
    pub response_timeout: Duration,
    /// How long a connection attempt may take.
    pub connection_timeout: Duration,
}

impl Default for RedisLimiterConfig {
    fn default() -> Self {
        Self {
            prefix: "bedrock-chat:rl".into(),
            response_timeout: Duration::from_secs(2),
            connection_timeout: Duration::from_secs(2),
        }
    }
}

/// A [`RateLimiter`] in Redis: exact across every process sharing the server.
///
/// ```no_run
/// use bedrock_chat_core::{Quota, RateLimiter};
/// use bedrock_chat_ratelimit::{RedisLimiterConfig, RedisRateLimiter};
///
/// # async fn demo() -> Result<(), bedrock_chat_core::RateLimitError> {
/// let limiter = RedisRateLimiter::connect(
///     "redis://127.0.0.1:6379/",
///     Quota::per_minute(25)?,
///     RedisLimiterConfig::default(),
/// )
/// .await?;
/// let decision = limiter.check("user-42", 1).await?;
/// # let _ = decision; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    script: Arc<redis::Script>,
    quota: Quota,
    prefix: Arc<str>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("quota", &self.quota)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Check,
    Charge,
    Refund,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::Charge => "charge",
            Self::Refund => "refund",
        }
    }
}

impl RedisRateLimiter {
    /// Connects to `url` (`redis://host:port/db`, or `rediss://` for TLS where the redis
    /// crate's TLS feature is on) on the system clock.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when Redis cannot be reached.
    pub async fn connect(
        url: &str,
        quota: Quota,
        config: RedisLimiterConfig,
    ) -> Result<Self, RateLimitError> {
        Self::connect_with_clock(url, quota, config, Arc::new(SystemClock)).await
    }

    /// As [`connect`](Self::connect), with windows taken from `clock`.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when Redis cannot be reached;
    /// [`RateLimitError::InvalidInput`] for a malformed URL.
    pub async fn connect_with_clock(
        url: &str,
        quota: Quota,
        config: RedisLimiterConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RateLimitError> {
        let client = redis::Client::open(url).map_err(|e| {
            RateLimitError::InvalidInput(bedrock_chat_core::InvalidInput::new(
                "redis_url",
                e.to_string(),
            ))
        })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.connection_timeout))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, manager_config)
            .await
            .map_err(classify)?;
        Ok(Self::from_connection(
            connection,
            quota,
            &config.prefix,
            clock,
        ))
    }

    /// A limiter over a connection you already have.
    pub fn from_connection(
        connection: ConnectionManager,
        quota: Quota,
        prefix: &str,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            connection,
            script: Arc::new(redis::Script::new(include_str!("limit.lua"))),
            quota,
            prefix: prefix.into(),
            clock,
        }
    }

    async fn run(&self, mode: Mode, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        validate_key(key)?;
        let window = self.quota.window_at(self.clock.now_millis());
        let counter = format!(
            "{}:{}:{}:{}",
            self.prefix,
            self.quota.window_millis(),
            key,
            window.index
        );
        let ttl = window.millis_to_reset + self.quota.window_millis();
        let mut connection = self.connection.clone();
        // EVALSHA built in place: one command, no intermediate invocation to copy from.
        let result: redis::RedisResult<i64> = redis::cmd("EVALSHA")
            .arg(self.script.get_hash())
            .arg(1)
            .arg(&counter)
            .arg(mode.as_str())
            .arg(cost)
            .arg(self.quota.limit())
            .arg(ttl)
            .query_async(&mut connection)
            .await;
        let reply = match result {
            Ok(reply) => reply,
            // The server does not have the script (new, restarted or flushed): load it,
            // once, through the slower path that does.
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => self
                .script
                .key(counter)
                .arg(mode.as_str())
                .arg(cost)
                .arg(self.quota.limit())
                .arg(ttl)
                .invoke_async(&mut connection)
                .await
                .map_err(classify)?,
            Err(e) => return Err(classify(e)),
        };
        // The script answers `used` when allowed and `-(used + 1)` when refused.
        let (allowed, used) = if reply >= 0 {
            (true, reply.unsigned_abs())
        } else {
            (false, (reply + 1).unsigned_abs())
        };
        Ok(self.decision(allowed, used, window))
    }

    fn decision(&self, allowed: bool, used: u64, window: Window) -> Decision {
        self.quota.decision(allowed, used, window)
    }
}

/// Maps the driver's errors to [`RateLimitError`]: anything about reaching the server is
/// `Unavailable`, the rest `Backend`.
fn classify(error: redis::RedisError) -> RateLimitError {
    let unreachable = error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.is_unrecoverable_error();
    if unreachable {
        RateLimitError::Unavailable {
            backend: BACKEND,
            source: Box::new(error),
        }
    } else {
        RateLimitError::Backend {
            backend: BACKEND,
            source: Box::new(error),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn quota(&self) -> Quota {
        self.quota
    }

    async fn check(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        self.quota.check_cost(cost)?;
        self.run(Mode::Check, key, cost).await
    }

    async fn charge(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        self.run(Mode::Charge, key, cost).await
    }

    async fn refund(&self, key: &str, cost: u64) -> Result<(), RateLimitError> {
        self.run(Mode::Refund, key, cost).await.map(|_| ())
    }

    /// One `PING`.
    async fn ping(&self) -> Result<(), RateLimitError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await
            .map_err(classify)
    }
}
