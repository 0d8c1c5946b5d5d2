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

/// One layer of a layered limiter under test, in the order the layers are given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerUnderTest {
    /// The one key every caller shares (a global limit), or `None` for a layer counting
    /// each caller's own key.
    pub shared: Option<String>,
    /// The layer's quota.
    pub quota: Quota,
}

/// Makes a layered limiter enforcing the given layers on a clock, in a fresh namespace.
#[doc(hidden)]
pub trait MakeLayeredLimiter {
    /// Makes the limiter under test.
    fn make(
        &self,
        layers: Vec<LayerUnderTest>,
        clock: ManualClock,
    ) -> BoxFuture<'static, Arc<dyn RateLimiter>>;
}

impl<F, Fut> MakeLayeredLimiter for F
where
    F: Fn(Vec<LayerUnderTest>, ManualClock) -> Fut,
    Fut: Future<Output = Arc<dyn RateLimiter>> + Send + 'static,
{
    fn make(
        &self,
        layers: Vec<LayerUnderTest>,
        clock: ManualClock,
    ) -> BoxFuture<'static, Arc<dyn RateLimiter>> {
        Box::pin(self(layers, clock))
    }
}

/// Expands into one `#[tokio::test]` per layered limiter case, each calling
/// `$make(layers, clock).await` for an `Arc<dyn RateLimiter>` enforcing `layers` (in that
/// order) on `clock`.
///
/// These cases hold a layered limiter to being one atomic step: a limiter that checks
/// layer by layer and refunds (the generic `LayeredRateLimiter`) fails
/// `a_refused_request_takes_nothing_from_another_layer_under_contention`.
#[macro_export]
macro_rules! layered_rate_limiter_conformance {
    ($make:path) => {
        $crate::__conformance_cases!(limiter, $make;
            a_refused_request_takes_nothing_from_another_layer_under_contention,
            every_layer_counts_and_the_tightest_layer_is_reported,
            charges_and_refunds_reach_every_layer,
            a_cost_above_any_layers_limit_is_an_error_and_spends_nothing,
        );
    };
}

fn per_key(limit: u64, window_secs: u64) -> LayerUnderTest {
    LayerUnderTest {
        shared: None,
        quota: quota(limit, window_secs),
    }
}

fn shared(limit: u64, window_secs: u64) -> LayerUnderTest {
    LayerUnderTest {
        shared: Some(format!("global-{}", random_key())),
        quota: quota(limit, window_secs),
    }
}

async fn setup_layers(
    make: &impl MakeLayeredLimiter,
    layers: Vec<LayerUnderTest>,
) -> (Arc<dyn RateLimiter>, ManualClock) {
    let clock = ManualClock::at_millis(START_MILLIS);
    let limiter = make.make(layers, clock.clone()).await;
    (limiter, clock)
}

/// A global layer with room for exactly 20 more, checked first, and a per-key layer of
/// 1: 20 fresh keys send one request each while a key already over its own limit sends
/// 180, all at once. The over-limit key's requests are refused by the per-key layer and
/// must take nothing from the global layer, not even for a moment: exactly the 20 fresh
/// requests pass.
pub async fn a_refused_request_takes_nothing_from_another_layer_under_contention(
    make: &impl MakeLayeredLimiter,
) {
    let (limiter, _clock) = setup_layers(make, vec![shared(21, 60), per_key(1, 60)]).await;
    let hot = random_key();
    assert!(limiter.check(&hot, 1).await.expect("check").allowed);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let limiter = Arc::clone(&limiter);
            let (key, fresh) = if i % 10 == 0 {
                (random_key(), true)
            } else {
                (hot.clone(), false)
            };
            tokio::spawn(async move { (fresh, limiter.check(&key, 1).await) })
        })
        .collect();
    let (mut fresh_allowed, mut hot_allowed) = (0, 0);
    for task in tasks {
        let (fresh, decision) = task.await.expect("task");
        let decision = decision.expect("check");
        match (fresh, decision.allowed) {
            (true, true) => fresh_allowed += 1,
            (false, true) => hot_allowed += 1,
            _ => {}
        }
    }
    assert_eq!(hot_allowed, 0, "the hot key is over its own limit");
    assert_eq!(
        fresh_allowed, 20,
        "every fresh request fits in the global layer; refused ones took room from it"
    );
    let spent = limiter.check(&random_key(), 1).await.expect("check");
    assert!(!spent.allowed, "the global layer is exactly full");
    assert_eq!((spent.limit, spent.remaining), (21, 0));
}

/// An allowed request is counted by every layer, a refused one by none, and the decision
/// reports the most restrictive layer: fewest units left when allowed, the refusing
/// layer (its limit and retry time) when refused.
pub async fn every_layer_counts_and_the_tightest_layer_is_reported(make: &impl MakeLayeredLimiter) {
    // Two per key per minute; three over all keys per second.
    let (limiter, clock) = setup_layers(make, vec![per_key(2, 60), shared(3, 1)]).await;
    let (a, b, c) = (random_key(), random_key(), random_key());
    let first = limiter.check(&a, 1).await.expect("check");
    assert!(first.allowed);
    assert_eq!(
        (first.limit, first.remaining),
        (2, 1),
        "per key 1 left, global 2"
    );
    let second = limiter.check(&a, 1).await.expect("check");
    assert_eq!((second.limit, second.remaining), (2, 0));
    let refused = limiter.check(&a, 1).await.expect("check");
    assert!(!refused.allowed, "a is over its own limit");
    assert_eq!((refused.limit, refused.remaining), (2, 0));
    assert_eq!(refused.retry_after, Some(Duration::from_secs(60)));
    let last = limiter.check(&b, 1).await.expect("check");
    assert!(
        last.allowed,
        "a's refusal took nothing from the global layer"
    );
    assert_eq!(
        (last.limit, last.remaining),
        (3, 0),
        "per key 1 left, global 0"
    );
    let global = limiter.check(&c, 1).await.expect("check");
    assert!(!global.allowed, "the global layer is full");
    assert_eq!((global.limit, global.remaining), (3, 0));
    assert_eq!(global.retry_after, Some(Duration::from_secs(1)));
    // The next second: the global layer starts again, and c's per-key count shows that
    // the global refusal spent nothing there either.
    clock.advance(Duration::from_secs(1));
    let again = limiter.check(&c, 1).await.expect("check");
    assert!(again.allowed);
    assert_eq!((again.limit, again.remaining), (2, 1));
    let still = limiter.check(&a, 1).await.expect("check");
    assert!(!still.allowed, "a's own minute has not ended");
    assert_eq!(still.retry_after, Some(Duration::from_secs(59)));
}

/// A charge overdraws every layer and a refund gives back in every layer.
pub async fn charges_and_refunds_reach_every_layer(make: &impl MakeLayeredLimiter) {
    let (limiter, _clock) = setup_layers(make, vec![per_key(100, 60), shared(50, 60)]).await;
    let key = random_key();
    let charged = limiter.charge(&key, 60).await.expect("charge");
    assert!(!charged.allowed, "the global layer is overdrawn");
    assert_eq!((charged.limit, charged.remaining), (50, 0));
    assert!(
        !limiter
            .check(&random_key(), 1)
            .await
            .expect("check")
            .allowed
    );
    limiter.refund(&key, 60).await.expect("refund");
    let after = limiter.check(&key, 50).await.expect("check");
    assert!(after.allowed, "both layers got the 60 back");
    assert_eq!((after.limit, after.remaining), (50, 0));
    let own = limiter.check(&key, 0).await.expect("check");
    assert!(!own.allowed, "the global layer is full again");
    limiter.refund(&key, 50).await.expect("refund");
    let per_key_left = limiter.check(&key, 0).await.expect("check");
    assert!(per_key_left.allowed);
    assert_eq!(
        (per_key_left.limit, per_key_left.remaining),
        (50, 50),
        "global 50 left, per key 100"
    );
}

/// A cost above any one layer's whole limit is an error, and nothing is spent in any
/// layer.
pub async fn a_cost_above_any_layers_limit_is_an_error_and_spends_nothing(
    make: &impl MakeLayeredLimiter,
) {
    let (limiter, _clock) = setup_layers(make, vec![per_key(10, 60), shared(5, 60)]).await;
    let key = random_key();
    match limiter.check(&key, 6).await {
        Err(error @ RateLimitError::InsufficientCapacity { cost: 6, limit: 5 }) => {
            assert!(!error.is_retryable());
        }
        other => panic!("expected InsufficientCapacity, got {other:?}"),
    }
    let all = limiter.check(&key, 5).await.expect("check");
    assert!(all.allowed, "nothing was spent by the refused cost");
    assert_eq!((all.limit, all.remaining), (5, 0));
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
        Err(
            error @ RateLimitError::InsufficientCapacity {
                cost: 11,
                limit: 10,
            },
        ) => {
            // Waiting never helps: not a 429, not retryable.
            assert!(!error.is_retryable());
            assert_eq!(error.http_status(), 413);
        }
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
