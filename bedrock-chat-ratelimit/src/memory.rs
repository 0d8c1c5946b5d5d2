//! [`InMemoryRateLimiter`]: exact fixed-window counting in process memory, of one quota or
//! of several [`Layers`] decided together.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bedrock_chat_core::limiter::{validate_key, Window};
use bedrock_chat_core::{Clock, Decision, Quota, RateLimitError, RateLimiter, SystemClock};
use hashbrown::HashTable;

use crate::layered::{decide_layers, decide_one, no_layers, LayerScope, Layers, Mode};

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
/// Each decision reads the clock while it holds the lock of the count it decides on, so
/// a thread delayed across a window's edge counts in the window it finally sees, never in
/// one that has already ended.
///
/// [`layered`](Self::layered) enforces several [`Layers`] (a per-key limit and a global
/// one, say) as one atomic step: every decision takes the locks of all its layers' counts,
/// always in layer order (so two decisions never deadlock), and counts the request in
/// every layer or in none.
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
    layers: Layers,
    clock: Arc<dyn Clock>,
    hasher: hashbrown::DefaultHashBuilder,
    /// One table of counts per layer, in the layers' order.
    tables: Box<[Table]>,
}

/// The counts of one layer.
#[derive(Debug)]
struct Table {
    quota: Quota,
    scope: LayerScope,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Debug)]
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

impl Table {
    fn new(quota: Quota, scope: LayerScope) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    counts: HashTable::new(),
                    window: i64::MIN,
                })
            })
            .collect();
        Self {
            quota,
            scope,
            shards,
        }
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        // The table's buckets use the hash's low bits and its tags the top seven; the
        // shard takes bits from the middle so that neither loses entropy.
        lock(&self.shards[((hash >> 32) as usize) % SHARDS])
    }
}

impl Shard {
    /// The window `now_ms` falls in, read under this shard's lock; moves the shard on
    /// (sweeping older counts) when it is a new one. A reading older than the shard's
    /// newest window (a clock stepped back) counts in the newest: an ended window is
    /// never counted in again.
    fn enter(&mut self, quota: &Quota, now_ms: i64) -> Window {
        let position = quota.window_at(now_ms);
        if position.index > self.window {
            let index = position.index;
            self.counts.retain(|count| count.window >= index);
            self.window = index;
            position
        } else if position.index < self.window {
            Window {
                index: self.window,
                millis_to_reset: quota.window_millis(),
            }
        } else {
            position
        }
    }

    fn used(&self, hash: u64, key: &str, window: i64) -> u64 {
        match self.counts.find(hash, |count| &*count.key == key) {
            Some(count) if count.window == window => count.used,
            _ => 0,
        }
    }

    fn set(
        &mut self,
        hasher: &hashbrown::DefaultHashBuilder,
        hash: u64,
        key: &str,
        window: i64,
        used: u64,
    ) {
        match self.counts.find_mut(hash, |count| &*count.key == key) {
            Some(count) => {
                count.window = window;
                count.used = used;
            }
            None => {
                let count = Count {
                    key: key.into(),
                    window,
                    used,
                };
                self.counts
                    .insert_unique(hash, count, |c| hasher.hash_one(&*c.key));
            }
        }
    }
}

impl InMemoryRateLimiter {
    /// A limiter enforcing `quota` on the system clock.
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, Arc::new(SystemClock))
    }

    /// A limiter enforcing `quota` on `clock`.
    pub fn with_clock(quota: Quota, clock: Arc<dyn Clock>) -> Self {
        Self::layered_with_clock(Layers::per_key(quota), clock)
    }

    /// A limiter enforcing every one of `layers` as one atomic step, on the system clock.
    /// Its [`quota`](RateLimiter::quota) is the first layer's; a decision reports the
    /// most restrictive layer.
    ///
    /// ```
    /// use bedrock_chat_core::{Quota, RateLimiter};
    /// use bedrock_chat_ratelimit::{InMemoryRateLimiter, Layers};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limiter = InMemoryRateLimiter::layered(
    ///     Layers::per_key(Quota::per_minute(10)?).and_shared("global", Quota::per_minute(2)?),
    /// );
    /// assert!(limiter.check("a", 1).await?.allowed);
    /// let last = limiter.check("b", 1).await?;
    /// assert_eq!((last.limit, last.remaining), (2, 0), "the global layer is the tightest");
    /// assert!(!limiter.check("c", 1).await?.allowed);
    /// # Ok(()) }
    /// ```
    pub fn layered(layers: Layers) -> Self {
        Self::layered_with_clock(layers, Arc::new(SystemClock))
    }

    /// As [`layered`](Self::layered), on `clock`.
    pub fn layered_with_clock(layers: Layers, clock: Arc<dyn Clock>) -> Self {
        let tables = layers
            .as_slice()
            .iter()
            .map(|layer| Table::new(layer.quota, layer.scope.clone()))
            .collect();
        Self {
            inner: Arc::new(Inner {
                layers,
                clock,
                hasher: hashbrown::DefaultHashBuilder::default(),
                tables,
            }),
        }
    }

    /// The layers this limiter enforces (one, for a limiter made with
    /// [`new`](Self::new)).
    pub fn layers(&self) -> &Layers {
        &self.inner.layers
    }

    /// [`check`](RateLimiter::check) without the async wrapper: the memory limiter never
    /// waits.
    ///
    /// # Errors
    /// [`RateLimitError::InsufficientCapacity`] when `cost` exceeds a layer's limit;
    /// [`RateLimitError::InvalidInput`] for an empty or overlong key.
    pub fn check_now(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        self.inner.layers.check_cost(cost)?;
        self.update(key, Mode::Check, cost)
    }

    /// [`charge`](RateLimiter::charge) without the async wrapper.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidInput`] for an empty or overlong key.
    pub fn charge_now(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        self.update(key, Mode::Charge, cost)
    }

    /// [`refund`](RateLimiter::refund) without the async wrapper.
    ///
    /// # Errors
    /// [`RateLimitError::InvalidInput`] for an empty or overlong key.
    pub fn refund_now(&self, key: &str, cost: u64) -> Result<(), RateLimitError> {
        self.update(key, Mode::Refund, cost).map(|_| ())
    }

    /// How many counts are held right now, over all layers (including swept-on-next-use
    /// ones).
    pub fn tracked_keys(&self) -> usize {
        self.inner
            .tables
            .iter()
            .flat_map(|table| table.shards.iter())
            .map(|s| lock(s).counts.len())
            .sum()
    }

    fn update(&self, key: &str, mode: Mode, cost: u64) -> Result<Decision, RateLimitError> {
        validate_key(key)?;
        let inner = &*self.inner;
        match &*inner.tables {
            [table] => Ok(self.update_one(table, key, mode, cost)),
            tables => self.update_layers(tables, key, mode, cost),
        }
    }

    /// One layer: one lock, no allocation.
    fn update_one(&self, table: &Table, key: &str, mode: Mode, cost: u64) -> Decision {
        let inner = &*self.inner;
        let key = table.scope.key(key);
        let hash = inner.hasher.hash_one(key);
        let mut shard = table.shard(hash);
        // The clock is read under the lock: see the type's docs.
        let window = shard.enter(&table.quota, inner.clock.now_millis());
        let used = shard.used(hash, key, window.index);
        let (decision, after) = decide_one(&table.quota, used, window, mode, cost);
        if after != used {
            shard.set(&inner.hasher, hash, key, window.index, after);
        }
        decision
    }

    /// Several layers: every layer's lock, taken in layer order, then one clock reading,
    /// then all or nothing.
    fn update_layers(
        &self,
        tables: &[Table],
        key: &str,
        mode: Mode,
        cost: u64,
    ) -> Result<Decision, RateLimitError> {
        let inner = &*self.inner;
        let keys: Vec<(&str, u64)> = tables
            .iter()
            .map(|table| {
                let key = table.scope.key(key);
                (key, inner.hasher.hash_one(key))
            })
            .collect();
        let mut shards: Vec<MutexGuard<'_, Shard>> = tables
            .iter()
            .zip(&keys)
            .map(|(table, (_, hash))| table.shard(*hash))
            .collect();
        let now_ms = inner.clock.now_millis();
        let mut positions = Vec::with_capacity(tables.len());
        let mut used = Vec::with_capacity(tables.len());
        for ((table, shard), (key, hash)) in tables.iter().zip(&mut shards).zip(&keys) {
            let window = shard.enter(&table.quota, now_ms);
            used.push(shard.used(*hash, key, window.index));
            positions.push((table.quota, window));
        }
        let (decision, after) =
            decide_layers(&positions, &used, mode, cost).ok_or_else(|| no_layers(BACKEND))?;
        for (i, shard) in shards.iter_mut().enumerate() {
            if after[i] != used[i] {
                let (key, hash) = keys[i];
                shard.set(&inner.hasher, hash, key, positions[i].1.index, after[i]);
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
        self.inner.layers.first_quota()
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
    use std::sync::mpsc;
    use std::time::Duration;

    /// A manual clock whose next reading, once armed, stalls after reading the time and
    /// before returning it: a thread descheduled right after looking at the clock.
    #[derive(Debug)]
    struct StallingClock {
        inner: ManualClock,
        stall: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
    }

    impl Clock for StallingClock {
        fn now(&self) -> bedrock_chat_core::Timestamp {
            self.inner.now()
        }

        fn now_millis(&self) -> i64 {
            let now = self.inner.now_millis();
            let armed = self.stall.lock().unwrap().take();
            if let Some((stalled, resume)) = armed {
                stalled.send(()).unwrap();
                // Bounded, so that a limiter holding its lock here cannot hang the test.
                let _ = resume.recv_timeout(Duration::from_millis(500));
            }
            now
        }
    }

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

    #[test]
    fn a_check_delayed_across_a_window_edge_does_not_reset_the_new_window() {
        let manual = ManualClock::at_millis(59_999);
        let (stalled_tx, stalled_rx) = mpsc::channel();
        let (resume_tx, resume_rx) = mpsc::channel();
        let clock = Arc::new(StallingClock {
            inner: manual.clone(),
            stall: Mutex::new(Some((stalled_tx, resume_rx))),
        });
        let limiter = InMemoryRateLimiter::with_clock(Quota::per_minute(1).unwrap(), clock);
        // A reads the clock in window 0, then stalls.
        let a = {
            let limiter = limiter.clone();
            std::thread::spawn(move || limiter.check_now("k", 1).unwrap())
        };
        stalled_rx.recv().unwrap();
        // Meanwhile window 1 begins and B spends the key's whole limit in it.
        manual.advance(Duration::from_millis(1));
        let b = {
            let limiter = limiter.clone();
            std::thread::spawn(move || limiter.check_now("k", 1).unwrap())
        };
        // Give B time to finish if nothing holds it back, then let A go on.
        std::thread::sleep(Duration::from_millis(100));
        resume_tx.send(()).unwrap();
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert!(b.allowed, "the first request of window 1");
        assert!(a.allowed, "the first request of window 0");
        // A must not have overwritten window 1's count with window 0's.
        let c = limiter.check_now("k", 1).unwrap();
        assert!(!c.allowed, "window 1's single unit is spent: {c:?}");
        assert_eq!(c.remaining, 0);
    }
}
