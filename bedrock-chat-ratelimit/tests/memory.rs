//! The rate limiter conformance suites on [`InMemoryRateLimiter`] (two handles of one
//! limiter stand for two instances over one backend), on its native layered limiter, and
//! on the wrappers: [`LayeredRateLimiter`] and [`FailurePolicyLimiter`] over it.

use std::sync::Arc;

use bedrock_chat_core::conformance::limiter::{LayerUnderTest, LimiterPair};
use bedrock_chat_core::{ManualClock, Quota, RateLimiter};
use bedrock_chat_ratelimit::{
    FailurePolicy, FailurePolicyLimiter, InMemoryRateLimiter, LayeredRateLimiter, Layers,
};

async fn memory(quota: Quota, clock: ManualClock) -> LimiterPair {
    let limiter = InMemoryRateLimiter::with_clock(quota, Arc::new(clock));
    LimiterPair {
        first: Arc::new(limiter.clone()),
        second: Arc::new(limiter),
    }
}

bedrock_chat_core::rate_limiter_conformance!(memory);

/// A global layer too large to bind, checked first, over `quota` per key: the suite sees
/// the per-key layer, through the layering.
fn roomy_global(quota: Quota) -> Quota {
    Quota::new(1_000_000, quota.window()).expect("a valid quota")
}

fn layers(under_test: Vec<LayerUnderTest>) -> Layers {
    let mut layers: Option<Layers> = None;
    for layer in under_test {
        layers = Some(match (layers, layer.shared) {
            (None, None) => Layers::per_key(layer.quota),
            (None, Some(name)) => Layers::shared(name, layer.quota),
            (Some(l), None) => l.and_per_key(layer.quota),
            (Some(l), Some(name)) => l.and_shared(name, layer.quota),
        });
    }
    layers.expect("at least one layer")
}

mod native_layered {
    use super::*;

    async fn layered(quota: Quota, clock: ManualClock) -> LimiterPair {
        let limiter = InMemoryRateLimiter::layered_with_clock(
            Layers::shared("global", roomy_global(quota)).and_per_key(quota),
            Arc::new(clock),
        );
        LimiterPair {
            first: Arc::new(limiter.clone()),
            second: Arc::new(limiter),
        }
    }

    bedrock_chat_core::rate_limiter_conformance!(layered);

    async fn native(under_test: Vec<LayerUnderTest>, clock: ManualClock) -> Arc<dyn RateLimiter> {
        Arc::new(InMemoryRateLimiter::layered_with_clock(
            layers(under_test),
            Arc::new(clock),
        ))
    }

    bedrock_chat_core::layered_rate_limiter_conformance!(native);
}

mod generic_layered {
    use super::*;

    async fn layered(quota: Quota, clock: ManualClock) -> LimiterPair {
        let clock = Arc::new(clock);
        let limiter = LayeredRateLimiter::shared(
            "global",
            Arc::new(InMemoryRateLimiter::with_clock(
                roomy_global(quota),
                clock.clone(),
            )),
        )
        .and_per_key(Arc::new(InMemoryRateLimiter::with_clock(quota, clock)));
        LimiterPair {
            first: Arc::new(limiter.clone()),
            second: Arc::new(limiter),
        }
    }

    bedrock_chat_core::rate_limiter_conformance!(layered);
}

mod fail_policy {
    use super::*;

    async fn wrapped(quota: Quota, clock: ManualClock) -> LimiterPair {
        let inner = Arc::new(InMemoryRateLimiter::with_clock(quota, Arc::new(clock)));
        LimiterPair {
            first: Arc::new(FailurePolicyLimiter::new(
                inner.clone(),
                FailurePolicy::FailOpen,
            )),
            second: Arc::new(FailurePolicyLimiter::new(inner, FailurePolicy::FailClosed)),
        }
    }

    bedrock_chat_core::rate_limiter_conformance!(wrapped);
}
