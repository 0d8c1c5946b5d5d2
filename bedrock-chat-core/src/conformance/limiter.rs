//! The [`RateLimiter`] conformance suite. Time is driven by a [`ManualClock`] that each
//! backend must read (Redis and DynamoDB receive it as an argument), so no case sleeps.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::random_key;
use crate::{ManualClock, Quota, RateLimitError, RateLimiter};

/// Midnight UTC, 1 January 2030: aligned to every window the cases use.
pub const START_MILLIS: i64 = 1_893_456_000_000;

/// Two handles over one backend namespace: for networked backends, two separate
/// connections, as two app servers would have; for the memory backend, two handles of
/// one limiter.
#[derive(Clone)]
pub struct LimiterPair {
    /// The first handle.
    pub first: Arc<dyn RateLimiter>,
    /// The second handle, sharing the first's counts.
    pub second: Arc<dyn RateLimiter>,
}

/// Makes a [`LimiterPair`] enforcing a quota on a clock, in a fresh namespace.
#[doc(hidden)]
pub trait MakeLimiter {
    /// Makes the pair under test.
    fn make(&self, quota: Quota, clock: ManualClock) -> BoxFuture<'static, LimiterPair>;
}

impl<F, Fut> MakeLimiter for F
where
    F: Fn(Quota, ManualClock) -> Fut,
    Fut: Future<Output = LimiterPair> + Send + 'static,
{
    fn make(&self, quota: Quota, clock: ManualClock) -> BoxFuture<'static, LimiterPair> {
        Box::pin(self(quota, clock))
    }
}

/// Expands into one `#[tokio::test]` per limiter conformance case, each calling
/// `$make(quota, clock).await` for a [`LimiterPair`].
#[macro_export]
macro_rules! rate_limiter_conformance {
    ($make:path) => {
        $crate::__conformance_cases!(limiter, $make;
            exactly_the_limit_of_200_concurrent_checks_pass,
            two_instances_share_one_count,
            the_window_resets_when_the_clock_moves,
            cost_above_one_spends_that_much,
            cost_that_does_not_fit_is_refused_without_spending,
            cost_above_the_limit_is_an_error_and_spends_nothing,
            keys_are_independent,
            remaining_and_reset_times_are_reported,
            charge_may_overdraw_and_later_checks_are_refused,
            refund_gives_back_what_was_spent,
            zero_cost_check_spends_nothing,
            bad_keys_are_refused,
        );
    };
}

fn quota(limit: u64, window_secs: u64) -> Quota {
    Quota::new(limit, Duration::from_secs(window_secs))
        .unwrap_or_else(|e| panic!("a valid test quota: {e}"))
}

async fn setup(
    make: &impl MakeLimiter,
    limit: u64,
    window_secs: u64,
) -> (LimiterPair, ManualClock) {
    let clock = ManualClock::at_millis(START_MILLIS);
    let pair = make.make(quota(limit, window_secs), clock.clone()).await;
    (pair, clock)
}

async fn concurrent_checks(limiters: &[Arc<dyn RateLimiter>], key: &str, n: usize) -> Vec<u64> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let limiter = Arc::clone(&limiters[i % limiters.len()]);
            let key = key.to_owned();
            tokio::spawn(async move { limiter.check(&key, 1).await })
        })
        .collect();
    let mut remaining_of_allowed = Vec::new();
    for task in tasks {
        let decision = task.await.expect("task").expect("check");
        if decision.allowed {
            remaining_of_allowed.push(decision.remaining);
        }
    }
    remaining_of_allowed.sort_unstable();
    remaining_of_allowed
}

/// With a limit of 10, exactly 10 of 200 concurrent checks pass, each seeing a different
/// `remaining`.
pub async fn exactly_the_limit_of_200_concurrent_checks_pass(make: &impl MakeLimiter) {
    let (pair, _clock) = setup(make, 10, 60).await;
    let allowed = concurrent_checks(&[pair.first], &random_key(), 200).await;
    assert_eq!(allowed, (0..10).collect::<Vec<u64>>());
}

/// Two instances over one backend share the count: still exactly 10 of 200.
pub async fn two_instances_share_one_count(make: &impl MakeLimiter) {
    let (pair, _clock) = setup(make, 10, 60).await;
    let allowed = concurrent_checks(&[pair.first, pair.second], &random_key(), 200).await;
    assert_eq!(allowed, (0..10).collect::<Vec<u64>>());
}

/// A spent window is refused until the clock reaches the next window.
pub async fn the_window_resets_when_the_clock_moves(make: &impl MakeLimiter) {
    let (pair, clock) = setup(make, 3, 60).await;
    let key = random_key();
    for _ in 0..3 {
        assert!(pair.first.check(&key, 1).await.expect("check").allowed);
    }
    assert!(!pair.first.check(&key, 1).await.expect("check").allowed);
    clock.advance(Duration::from_secs(59));
    assert!(
        !pair.second.check(&key, 1).await.expect("check").allowed,
        "still the same window"
    );
    clock.advance(Duration::from_secs(1));
    let fresh = pair.second.check(&key, 1).await.expect("check");
    assert!(fresh.allowed, "a new window");
    assert_eq!(fresh.remaining, 2);
}

/// A cost above one spends that many units.
pub async fn cost_above_one_spends_that_much(make: &impl MakeLimiter) {
    let (pair, _clock) = setup(make, 10, 60).await;
    let key = random_key();
    assert_eq!(pair.first.check(&key, 4).await.expect("check").remaining, 6);
    let last = pair.first.check(&key, 6).await.expect("check");
    assert!(last.allowed);
    assert_eq!(last.remaining, 0);
    assert!(!pair.first.check(&key, 1).await.expect("check").allowed);
}

/// A cost that does not fit in what is left is refused, and spends nothing.
pub async fn cost_that_does_not_fit_is_refused_without_spending(make: &impl MakeLimiter) {
    let (pair, _clock) = setup(make, 10, 60).await;
    let key = random_key();
    pair.first.check(&key, 8).await.expect("check");
    let refused = pair.first.check(&key, 3).await.expect("check");
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 2);
    assert!(refused.retry_after.is_some());
    let fits = pair.first.check(&key, 2).await.expect("check");
    assert!(fits.allowed);
    assert_eq!(fits.remaining, 0);
}

/// A cost above the whole limit can never pass: an error, and nothing spent.
pub async fn cost_above_the_limit_is_an_error_and_spends_nothing(make: &impl MakeLimiter) {
    let (pair, _clock) = setup(make, 10, 60).await;
    let key = random_key();
    match pair.first.check(&key, 11).await {
        Err(RateLimitError::InsufficientCapacity {
            cost: 11,
            limit: 10,
        }) => {}
        other => panic!("expected InsufficientCapacity, got {other:?}"),
    }
    let all = pair.first.check(&key, 10).await.expect("check");
    assert!(all.allowed, "the refused cost must not have been spent");
}

/// Keys count separately.
pub async fn keys_are_independent(make: &impl MakeLimiter) {
    let (pair, _clock) = setup(make, 2, 60).await;
    let (a, b) = (random_key(), random_key());
    pair.first.check(&a, 2).await.expect("check");
    assert!(!pair.first.check(&a, 1).await.expect("check").allowed);
    let other = pair.first.check(&b, 1).await.expect("check");
    assert!(other.allowed);
    assert_eq!(other.remaining, 1);
}

/// Limit, remaining, window, reset and retry times are right.
pub async fn remaining_and_reset_times_are_reported(make: &impl MakeLimiter) {
    let (pair, clock) = setup(make, 2, 60).await;
    let key = random_key();
    clock.advance(Duration::from_secs(15));
    let first = pair.first.check(&key, 1).await.expect("check");
    assert!(first.allowed);
    assert_eq!((first.limit, first.remaining), (2, 1));
    assert_eq!(first.window, Duration::from_secs(60));
    assert_eq!(first.reset_after, Duration::from_secs(45));
    assert_eq!(first.retry_after, None);
    pair.first.check(&key, 1).await.expect("check");
    clock.advance(Duration::from_millis(10_500));
    let refused = pair.first.check(&key, 1).await.expect("check");
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert_eq!(refused.reset_after, Duration::from_millis(34_500));
    assert_eq!(refused.retry_after, Some(Duration::from_millis(34_500)));
    assert_eq!(refused.retry_after_secs(), Some(35));
}

/// A token budget: a charge after the fact may overdraw; the next check is refused until
/// the window resets.
pub async fn charge_may_overdraw_and_later_checks_are_refused(make: &impl MakeLimiter) {
    let (pair, clock) = setup(make, 100, 86_400).await;
    let key = random_key();
    assert!(pair.first.check(&key, 0).await.expect("check").allowed);
    let charged = pair.first.charge(&key, 60).await.expect("charge");
    assert_eq!(charged.remaining, 40);
    let overdrawn = pair.second.charge(&key, 90).await.expect("charge");
    assert!(!overdrawn.allowed, "a charge past the limit reports it");
    assert_eq!(overdrawn.remaining, 0);
    let refused = pair.first.check(&key, 0).await.expect("check");
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after, Some(Duration::from_secs(86_400)));
    clock.advance(Duration::from_secs(86_400));
    let next_day = pair.first.check(&key, 0).await.expect("check");
    assert!(next_day.allowed);
    assert_eq!(next_day.remaining, 100);
}

/// A refund gives back spent units, never more than were spent.
pub async fn refund_gives_back_what_was_spent(make: &impl MakeLimiter) {
    let (pair, _clock) = setup(make, 3, 60).await;
    let key = random_key();
    pair.first.check(&key, 3).await.expect("check");
    assert!(!pair.first.check(&key, 1).await.expect("check").allowed);
    pair.second.refund(&key, 2).await.expect("refund");
    let after = pair.first.check(&key, 2).await.expect("check");
    assert!(after.allowed, "the refunded units can be spent again");
    assert_eq!(after.remaining, 0);
    pair.first
        .refund(&key, 100)
        .await
        .expect("refund more than spent");
    assert_eq!(pair.first.check(&key, 0).await.expect("check").remaining, 3);
    // Refunding a key that spent nothing is harmless.
    pair.first
        .refund(&random_key(), 5)
        .await
        .expect("refund an unused key");
}

/// A zero-cost check asks whether anything is left and spends nothing.
pub async fn zero_cost_check_spends_nothing(make: &impl MakeLimiter) {
    let (pair, _clock) = setup(make, 10, 60).await;
    let key = random_key();
    for _ in 0..5 {
        let d = pair.first.check(&key, 0).await.expect("check");
        assert!(d.allowed);
        assert_eq!(d.remaining, 10);
    }
}

/// Empty and overlong keys are refused.
pub async fn bad_keys_are_refused(make: &impl MakeLimiter) {
    let (pair, _clock) = setup(make, 10, 60).await;
    for key in [String::new(), "k".repeat(crate::limiter::MAX_KEY_LEN + 1)] {
        match pair.first.check(&key, 1).await {
            Err(RateLimitError::InvalidInput(_)) => {}
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }
}
