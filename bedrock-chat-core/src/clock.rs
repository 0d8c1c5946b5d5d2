//! Time, injected: the system clock in production, a [`ManualClock`] in tests, so no test
//! ever sleeps through a real rate-limit window.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{TimeZone, Utc};

use crate::types::Timestamp;

/// Where time comes from.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time, truncated to microseconds.
    fn now(&self) -> Timestamp;

    /// The current time as milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// The operating system's wall clock.
///
/// [`now_millis`](Clock::now_millis), which rate limiters call on every check, reads the
/// CPU's time-stamp counter (through `quanta`) anchored to the wall clock and re-anchored
/// every second, so it follows NTP adjustments within a second while costing a fraction
/// of a system clock read.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        truncate_to_micros(Utc::now())
    }

    fn now_millis(&self) -> i64 {
        FastWallClock::global().now_millis()
    }
}

/// Wall time from a monotonic counter: `counter + offset`, the offset taken from the
/// system clock at most a second ago. One atomic holds the offset, so a reader never mixes
/// an old anchor with a new one.
struct FastWallClock {
    counter: quanta::Clock,
    start_raw: u64,
    offset_ns: AtomicI64,
    next_anchor_ns: AtomicU64,
}

const ANCHOR_EVERY_NS: u64 = 1_000_000_000;

impl FastWallClock {
    fn global() -> &'static FastWallClock {
        static GLOBAL: OnceLock<FastWallClock> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let counter = quanta::Clock::new();
            let start_raw = counter.raw();
            let clock = FastWallClock {
                counter,
                start_raw,
                offset_ns: AtomicI64::new(0),
                next_anchor_ns: AtomicU64::new(0),
            };
            clock.anchor(0);
            clock
        })
    }

    fn elapsed_ns(&self) -> u64 {
        self.counter
            .delta_as_nanos(self.start_raw, self.counter.raw())
    }

    fn anchor(&self, elapsed_ns: u64) {
        let wall_ns = Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or_else(|| Utc::now().timestamp_millis().saturating_mul(1_000_000));
        let elapsed = i64::try_from(elapsed_ns).unwrap_or(i64::MAX);
        self.offset_ns.store(wall_ns - elapsed, Ordering::Relaxed);
        self.next_anchor_ns
            .store(elapsed_ns + ANCHOR_EVERY_NS, Ordering::Relaxed);
    }

    fn now_millis(&self) -> i64 {
        let mut elapsed = self.elapsed_ns();
        if elapsed >= self.next_anchor_ns.load(Ordering::Relaxed) {
            self.anchor(elapsed);
            elapsed = self.elapsed_ns();
        }
        let elapsed = i64::try_from(elapsed).unwrap_or(i64::MAX);
        (elapsed + self.offset_ns.load(Ordering::Relaxed)).div_euclid(1_000_000)
    }
}

/// Drops sub-microsecond precision, which not every backend keeps.
pub fn truncate_to_micros(t: Timestamp) -> Timestamp {
    Utc.timestamp_micros(t.timestamp_micros())
        .single()
        .unwrap_or(t)
}

/// A clock that moves only when told to. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use bedrock_chat_core::{Clock, ManualClock};
///
/// let clock = ManualClock::at_millis(60_000);
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(clock.now_millis(), 90_000);
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            micros: Arc::new(AtomicI64::new(start.timestamp_micros())),
        }
    }

    /// A clock showing this many milliseconds after the Unix epoch.
    pub fn at_millis(millis: i64) -> Self {
        Self {
            micros: Arc::new(AtomicI64::new(millis.saturating_mul(1000))),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.micros.fetch_add(micros, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, to: Timestamp) {
        self.micros.store(to.timestamp_micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Utc.timestamp_micros(self.micros.load(Ordering::SeqCst))
            .single()
            .unwrap_or_default()
    }

    fn now_millis(&self) -> i64 {
        self.micros.load(Ordering::SeqCst).div_euclid(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_wall_clock_agrees_with_the_system_clock() {
        for _ in 0..3 {
            let before = Utc::now().timestamp_millis();
            let fast = SystemClock.now_millis();
            let after = Utc::now().timestamp_millis();
            // The anchor is at most a second old; the counter drifts by parts per million.
            assert!(
                fast >= before - 5 && fast <= after + 5,
                "{before} <= {fast} <= {after}"
            );
            std::thread::sleep(Duration::from_millis(600));
        }
    }
}
