//! [`InMemoryRateLimiter`]: exact fixed-window counting in process memory.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bedrock_chat_core::limiter::{validate_key, Window};
use bedrock_chat_core::{Clock, Decision, Quota, RateLimitError, RateLimiter, SystemClock};
use hashbrown::HashTable;

const BACKEND: &str = "memory";
/// Shards spread keys over separate locks so that concurrent checks of different keys
/// rarely wait for each other.
const SHARDS: usize = 64;

/// A [`RateLimiter`] in process memory: exact under any concurrency within the process,
/// not shared with other processes (use the Redis or DynamoDB limiter for that).
///
/// Memory stays bounded by the keys active in the current window: each shard drops the
/// counts of past windows the first time it is used in a new one.
///
/// Cloning gives another handle to the same counts.
///
/// ```
/// use bedrock_chat_core::{Quota, RateLimiter};
/// use bedrock_chat_ratelimit::InMemoryRateLimiter;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = InMemoryRateLimiter::new(Quota::per_minute(2)?);
/// assert!(limiter.check("203.0.113.7", 1).await?.allowed);
/// assert!(limiter.check("203.0.113.7", 1).await?.allowed);
/// let third = limiter.check("203.0.113.7", 1).await?;
/// assert!(!third.allowed);
/// assert!(third.retry_after.is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct InMemoryRateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    quota: Quota,
    clock: Arc<dyn Clock>,
    hasher: hashbrown::DefaultHashBuilder,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Debug, Default)]
struct Shard {
    /// Counts by key, hashed once per check (the same hash picks the shard).
    counts: HashTable<Count>,
    /// The newest window this shard has seen; counts of older windows are swept when it
    /// moves on.
    window: i64,
}

/// 32 bytes: the hash is not kept (only a resize needs it, and recomputes it from the key),
/// so that more counts share a cache line.
#[derive(Clone, Debug)]
struct Count {
    key: Box<str>,
    window: i64,
    used: u64,
}

impl InMemoryRateLimiter {
    /// A limiter enforcing `quota` on the system clock.
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, Arc::new(SystemClock))
    }

    /// A limiter enforcing `quota` on `clock`.
    pub fn with_clock(quota: Quota, clock: Arc<dyn Clock>) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Self {
            inner: Arc::new(Inner {
                quota,
                clock,
                hasher: hashbrown::DefaultHashBuilder::default(),
                shards,
            }),
        }
    }

    /// [`check`](RateLimiter::check) without the async wrapper: the memory limiter never
    /// waits.
    ///
    /// # Errors
    /// [`RateLimitError::InsufficientCapacity`] when `cost` exceeds the limit;
    /// [`RateLimitError::InvalidInput`] for an empty or overlong key.
    pub fn check_now(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        self.inner.quota.check_cost(cost)?;
        self.update(key, |quota, used, window| quota.decide(used, cost, window))
    }

    /// [`charge`](RateLimiter::charge) without the async wrapper.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidInput`] for an empty or overlong key.
    pub fn charge_now(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        self.update(key, |quota, used, window| {
            let used = used.saturating_add(cost);
            (quota.decision(used <= quota.limit(), used, window), used)
        })
    }

    /// [`refund`](RateLimiter::refund) without the async wrapper.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidInput`] for an empty or overlong key.
    pub fn refund_now(&self, key: &str, cost: u64) -> Result<(), RateLimitError> {
        self.update(key, |quota, used, window| {
            let used = used.saturating_sub(cost);
            (quota.decision(true, used, window), used)
        })
        .map(|_| ())
    }

    /// How many keys hold a count right now (including swept-on-next-use ones).
    pub fn tracked_keys(&self) -> usize {
        self.inner.shards.iter().map(|s| lock(s).counts.len()).sum()
    }

    fn update(
        &self,
        key: &str,
        rule: impl FnOnce(&Quota, u64, Window) -> (Decision, u64),
    ) -> Result<Decision, RateLimitError> {
        validate_key(key)?;
        let inner = &*self.inner;
        let position = inner.quota.window_at(inner.clock.now_millis());
        let window = position.index;
        let hash = inner.hasher.hash_one(key);
        // The table's buckets use the hash's low bits and its tags the top seven; the
        // shard takes bits from the middle so that neither loses entropy.
        let shard_index = ((hash >> 32) as usize) % SHARDS;
        let mut shard = lock(&inner.shards[shard_index]);
        if window > shard.window {
            shard.counts.retain(|count| count.window >= window);
            shard.window = window;
        }
        let found = shard.counts.find_mut(hash, |count| &*count.key == key);
        let used = match &found {
            Some(count) if count.window == window => count.used,
            _ => 0,
        };
        let (decision, used_after) = rule(&inner.quota, used, position);
        if used_after != used {
            match found {
                Some(count) => {
                    count.window = window;
                    count.used = used_after;
                }
                None => {
                    let count = Count {
                        key: key.into(),
                        window,
                        used: used_after,
                    };
                    let hasher = &inner.hasher;
                    shard
                        .counts
                        .insert_unique(hash, count, |c| hasher.hash_one(&*c.key));
                }
            }
        }
        Ok(decision)
    }
}

// A panic cannot happen while a shard is locked (the critical section is plain arithmetic
// and map operations), so a poisoned lock still holds consistent counts.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn quota(&self) -> Quota {
        self.inner.quota
    }

    async fn check(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        self.check_now(key, cost)
    }

    async fn charge(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        self.charge_now(key, cost)
    }

    async fn refund(&self, key: &str, cost: u64) -> Result<(), RateLimitError> {
        self.refund_now(key, cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bedrock_chat_core::ManualClock;
    use std::time::Duration;

    #[test]
    fn idle_keys_are_swept_when_the_window_moves_on() {
        let clock = ManualClock::at_millis(0);
        let limiter =
            InMemoryRateLimiter::with_clock(Quota::per_minute(5).unwrap(), Arc::new(clock.clone()));
        for i in 0..10_000 {
            limiter.check_now(&format!("ip-{i}"), 1).unwrap();
        }
        assert_eq!(limiter.tracked_keys(), 10_000);
        clock.advance(Duration::from_secs(60));
        // Touching every shard once in the new window sweeps it.
        for i in 0..1_000 {
            limiter.check_now(&format!("new-{i}"), 1).unwrap();
        }
        assert_eq!(limiter.tracked_keys(), 1_000);
    }
}
