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
//! # Layers
//! A limiter made from several [`Layers`] (a per-key quota and a global one, say) decides
//! them in one `EVALSHA` of a second script that reads every layer's counter and spends
//! the cost in all of them or in none, so a request refused by one layer never holds room
//! in another, even for a moment. Each layer has its own counter,
//! `{prefix}:{layer}:{window_ms}:{k|s}:{key or shared name}:{window_index}` (`k` for a
//! per-key layer, `s` for a shared one). The script touches several keys: on Redis
//! Cluster, put a hash tag in the prefix (`{rl}`) so that they share a slot.
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

use crate::layered::{decide_layers, no_layers, LayerScope, Layers, Mode};

const BACKEND: &str = "redis";

/// How to connect and name keys.
///
/// ```
/// use std::time::Duration;
/// use bedrock_chat_ratelimit::RedisLimiterConfig;
/// let config = RedisLimiterConfig::new()
///     .with_prefix("chat:rl")
///     .with_response_timeout(Duration::from_millis(500));
/// assert_eq!(config.prefix, "chat:rl");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
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

impl RedisLimiterConfig {
    /// Prefix `bedrock-chat:rl`, 2 s for a command and 2 s to connect.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`prefix`](Self::prefix).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`response_timeout`](Self::response_timeout).
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sets [`connection_timeout`](Self::connection_timeout).
    pub fn with_connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }
}

/// A [`RateLimiter`] in Redis: exact across every process sharing the server.
///
/// Made from one [`Quota`], it counts each caller's key; made from several [`Layers`], it
/// enforces all of them as one atomic step (one script, one `EVALSHA` per decision) and
/// reports the most restrictive layer. Its [`quota`](RateLimiter::quota) is the first
/// layer's.
///
/// ```no_run
/// use bedrock_chat_core::{Quota, RateLimiter};
/// use bedrock_chat_ratelimit::{Layers, RedisLimiterConfig, RedisRateLimiter};
///
/// # async fn demo() -> Result<(), bedrock_chat_core::RateLimitError> {
/// let limiter = RedisRateLimiter::connect(
///     "redis://127.0.0.1:6379/",
///     Quota::per_minute(25)?,
///     RedisLimiterConfig::default(),
/// )
/// .await?;
/// let decision = limiter.check("user-42", 1).await?;
///
/// // Seed 003: 10 per minute per IP and 100 per second over all IPs, decided together.
/// let layers = Layers::per_key(Quota::per_minute(10)?).and_shared("global", Quota::per_second(100)?);
/// let layered = RedisRateLimiter::connect("redis://127.0.0.1:6379/", layers, RedisLimiterConfig::default()).await?;
/// let decision = layered.check("203.0.113.7", 1).await?;
/// # let _ = decision; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    script: Arc<redis::Script>,
    layered_script: Arc<redis::Script>,
    quota: Quota,
    layers: Arc<Layers>,
    /// One per-key layer: the single-counter script, and the key layout without layer
    /// numbers.
    single: bool,
    prefix: Arc<str>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("layers", &self.layers)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// Connects to `url` (`redis://host:port/db`, or `rediss://` for TLS where the redis
    /// crate's TLS feature is on) on the system clock, to enforce a [`Quota`] or
    /// [`Layers`].
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when Redis cannot be reached.
    pub async fn connect(
        url: &str,
        quota: impl Into<Layers>,
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
        quota: impl Into<Layers>,
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

    /// A limiter enforcing a [`Quota`] or [`Layers`] over a connection you already have.
    pub fn from_connection(
        connection: ConnectionManager,
        quota: impl Into<Layers>,
        prefix: &str,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let layers: Layers = quota.into();
        let single = matches!(layers.as_slice(), [layer] if layer.scope == LayerScope::PerKey);
        Self {
            connection,
            script: Arc::new(redis::Script::new(include_str!("limit.lua"))),
            layered_script: Arc::new(redis::Script::new(include_str!("layered.lua"))),
            quota: layers.first_quota(),
            layers: Arc::new(layers),
            single,
            prefix: prefix.into(),
            clock,
        }
    }

    /// The layers this limiter enforces (one, for a limiter made from a [`Quota`]).
    pub fn layers(&self) -> &Layers {
        &self.layers
    }

    /// Several layers: one `EVALSHA` of the layered script.
    async fn run_layered(
        &self,
        mode: Mode,
        key: &str,
        cost: u64,
    ) -> Result<Decision, RateLimitError> {
        validate_key(key)?;
        let now_ms = self.clock.now_millis();
        let layers = self.layers.as_slice();
        let positions: Vec<(Quota, Window)> = layers
            .iter()
            .map(|layer| (layer.quota, layer.quota.window_at(now_ms)))
            .collect();
        let mut counters = Vec::with_capacity(layers.len());
        let mut args: Vec<u64> = Vec::with_capacity(1 + 2 * layers.len());
        args.push(cost);
        for (i, (layer, (quota, window))) in layers.iter().zip(&positions).enumerate() {
            let (kind, name) = match &layer.scope {
                LayerScope::PerKey => ("k", key),
                LayerScope::Shared(name) => ("s", name.as_str()),
            };
            counters.push(format!(
                "{}:{i}:{}:{kind}:{name}:{}",
                self.prefix,
                quota.window_millis(),
                window.index
            ));
            args.push(quota.limit());
            args.push(window.millis_to_reset + quota.window_millis());
        }
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("EVALSHA");
        command
            .arg(self.layered_script.get_hash())
            .arg(counters.len())
            .arg(&counters)
            .arg(mode.as_str())
            .arg(&args);
        let result: redis::RedisResult<Vec<i64>> = command.query_async(&mut connection).await;
        let used = match result {
            Ok(used) => used,
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                let mut invocation = self.layered_script.prepare_invoke();
                for counter in &counters {
                    invocation.key(counter);
                }
                invocation.arg(mode.as_str()).arg(&args);
                invocation
                    .invoke_async(&mut connection)
                    .await
                    .map_err(classify)?
            }
            Err(e) => return Err(classify(e)),
        };
        if used.len() != layers.len() {
            return Err(RateLimitError::Backend {
                backend: BACKEND,
                source: format!(
                    "the layered script answered {} counts for {} layers",
                    used.len(),
                    layers.len()
                )
                .into(),
            });
        }
        // The script answers what each layer had spent before; the same rule, applied
        // here, says what it decided.
        let used: Vec<u64> = used.into_iter().map(|n| n.max(0).unsigned_abs()).collect();
        decide_layers(&positions, &used, mode, cost)
            .map(|(decision, _)| decision)
            .ok_or_else(|| no_layers(BACKEND))
    }

    async fn run(&self, mode: Mode, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        if !self.single {
            return self.run_layered(mode, key, cost).await;
        }
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
        self.layers.check_cost(cost)?;
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
