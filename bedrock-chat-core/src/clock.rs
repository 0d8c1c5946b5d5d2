//! Time, injected: the system clock in production, a [`ManualClock`] in tests, so no test
//! ever sleeps through a real rate-limit window.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
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
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        truncate_to_micros(Utc::now())
    }

    fn now_millis(&self) -> i64 {
        Utc::now().timestamp_millis()
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
