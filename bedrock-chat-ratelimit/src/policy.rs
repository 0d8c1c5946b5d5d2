//! [`FailurePolicyLimiter`]: what to do when the limiter's backend is down.

use std::sync::Arc;

use async_trait::async_trait;
use bedrock_chat_core::{Decision, Quota, RateLimitError, RateLimiter};

/// What a limit does when its backend cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Refuse: the error goes to the caller, which answers 503. Nothing passes
    /// unlimited. The default.
    #[default]
    FailClosed,
    /// Allow, and log a warning for every request let through unlimited.
    FailOpen,
}

/// Wraps a limiter with a [`FailurePolicy`] for backend failures (`Unavailable` and
/// unexpected `Backend` errors). Bad input and over-large costs are errors under either
/// policy.
///
/// ```
/// use std::sync::Arc;
/// use bedrock_chat_core::Quota;
/// use bedrock_chat_ratelimit::{FailurePolicy, FailurePolicyLimiter, InMemoryRateLimiter};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let inner = Arc::new(InMemoryRateLimiter::new(Quota::per_minute(25)?));
/// let limiter = FailurePolicyLimiter::new(inner, FailurePolicy::FailOpen);
/// # let _ = limiter; Ok(()) }
/// ```
#[derive(Clone)]
pub struct FailurePolicyLimiter {
    inner: Arc<dyn RateLimiter>,
    policy: FailurePolicy,
}

impl std::fmt::Debug for FailurePolicyLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailurePolicyLimiter")
            .field("backend", &self.inner.backend())
            .field("policy", &self.policy)
            .finish()
    }
}

impl FailurePolicyLimiter {
    /// `inner` under `policy`.
    pub fn new(inner: Arc<dyn RateLimiter>, policy: FailurePolicy) -> Self {
        Self { inner, policy }
    }

    /// The policy.
    pub fn policy(&self) -> FailurePolicy {
        self.policy
    }

    fn on_failure<T>(
        &self,
        result: Result<T, RateLimitError>,
        key: &str,
        allowed: impl FnOnce() -> T,
    ) -> Result<T, RateLimitError> {
        match result {
            Err(error @ (RateLimitError::Unavailable { .. } | RateLimitError::Backend { .. }))
                if self.policy == FailurePolicy::FailOpen =>
            {
                tracing::warn!(
                    backend = self.inner.backend(),
                    key,
                    error = %error,
                    "rate limiter unavailable; failing open, the request is not limited"
                );
                Ok(allowed())
            }
            other => other,
        }
    }

    fn unlimited(&self) -> Decision {
        // Nothing spent, a whole window to go (the epoch starts a window).
        let quota = self.inner.quota();
        quota.decision(true, 0, quota.window_at(0))
    }
}

#[async_trait]
impl RateLimiter for FailurePolicyLimiter {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn quota(&self) -> Quota {
        self.inner.quota()
    }

    async fn check(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        let result = self.inner.check(key, cost).await;
        self.on_failure(result, key, || self.unlimited())
    }

    async fn charge(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        let result = self.inner.charge(key, cost).await;
        self.on_failure(result, key, || self.unlimited())
    }

    async fn refund(&self, key: &str, cost: u64) -> Result<(), RateLimitError> {
        let result = self.inner.refund(key, cost).await;
        self.on_failure(result, key, || ())
    }

    /// The inner limiter's answer, whatever the policy: a health check reports a backend
    /// that is down even while requests are let through.
    async fn ping(&self) -> Result<(), RateLimitError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bedrock_chat_core::MockRateLimiter;

    fn down() -> MockRateLimiter {
        let mut limiter = MockRateLimiter::new();
        limiter
            .expect_quota()
            .return_const(Quota::per_minute(25).unwrap());
        limiter.expect_backend().return_const("mock");
        limiter.expect_check().returning(|_, cost| {
            if cost > 25 {
                Err(RateLimitError::InsufficientCapacity { cost, limit: 25 })
            } else {
                Err(RateLimitError::Unavailable {
                    backend: "mock",
                    source: "connection refused".into(),
                })
            }
        });
        limiter
    }

    #[tokio::test]
    async fn fail_closed_passes_the_error_on() {
        let limiter = FailurePolicyLimiter::new(Arc::new(down()), FailurePolicy::default());
        let err = limiter.check("k", 1).await.unwrap_err();
        assert!(matches!(err, RateLimitError::Unavailable { .. }));
        assert_eq!(err.http_status(), 503);
    }

    #[tokio::test]
    async fn fail_open_allows_with_the_quota_in_the_decision() {
        let limiter = FailurePolicyLimiter::new(Arc::new(down()), FailurePolicy::FailOpen);
        let d = limiter.check("k", 1).await.unwrap();
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining), (25, 25));
        // Bad requests are still errors.
        assert!(matches!(
            limiter.check("k", 26).await,
            Err(RateLimitError::InsufficientCapacity { .. })
        ));
    }

    #[tokio::test]
    async fn ping_reports_a_down_backend_even_when_failing_open() {
        let mut inner = down();
        inner.expect_ping().returning(|| {
            Err(RateLimitError::Unavailable {
                backend: "mock",
                source: "connection refused".into(),
            })
        });
        let limiter = FailurePolicyLimiter::new(Arc::new(inner), FailurePolicy::FailOpen);
        assert!(matches!(
            limiter.ping().await,
            Err(RateLimitError::Unavailable { .. })
        ));
    }
}
