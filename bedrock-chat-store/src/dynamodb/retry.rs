//! Bounded exponential backoff with jitter, for transactions DynamoDB cancelled for a
//! conflict or throttling and for appends that lost the race for a sequence number.

use std::time::Duration;

/// How often to try, and how long to wait between tries.
#[derive(Clone, Copy, Debug)]
pub(super) struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub(super) max_attempts: u32,
    /// The wait before the first retry; it doubles each retry.
    pub(super) initial: Duration,
    /// The longest wait.
    pub(super) max: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first): half of the capped
    /// exponential delay plus a random part of the other half ("equal jitter"), so that
    /// writers that collided spread out instead of colliding again.
    pub(super) fn delay(&self, retry: u32) -> Duration {
        let exponential = self
            .initial
            .saturating_mul(1_u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX));
        let capped = exponential.min(self.max);
        let half = capped / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(random_below(nanos.saturating_add(1)))
    }

    /// Sleeps before retry number `retry`.
    pub(super) async fn pause(&self, retry: u32) {
        tokio::time::sleep(self.delay(retry)).await;
    }
}

/// A random number below `bound` (0 for a bound of 0), from the operating system's
/// randomness that `uuid` already draws on; jitter needs no better.
fn random_below(bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    // The low 64 bits of a v4 UUID are random but for the 2 variant bits.
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    random % bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_their_bounds_and_stop_at_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
        };
        for _ in 0..100 {
            let first = policy.delay(0);
            assert!(first >= Duration::from_millis(5) && first <= Duration::from_millis(10));
            let third = policy.delay(2);
            assert!(third >= Duration::from_millis(20) && third <= Duration::from_millis(40));
            let late = policy.delay(40);
            assert!(late >= Duration::from_millis(50) && late <= Duration::from_millis(100));
        }
    }
}
