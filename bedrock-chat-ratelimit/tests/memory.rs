//! The rate limiter conformance suite on [`InMemoryRateLimiter`]: two handles of one
//! limiter stand for two instances over one backend.

use std::sync::Arc;

use bedrock_chat_core::conformance::limiter::LimiterPair;
use bedrock_chat_core::{ManualClock, Quota};
use bedrock_chat_ratelimit::InMemoryRateLimiter;

async fn memory(quota: Quota, clock: ManualClock) -> LimiterPair {
    let limiter = InMemoryRateLimiter::with_clock(quota, Arc::new(clock));
    LimiterPair {
        first: Arc::new(limiter.clone()),
        second: Arc::new(limiter),
    }
}

bedrock_chat_core::rate_limiter_conformance!(memory);
