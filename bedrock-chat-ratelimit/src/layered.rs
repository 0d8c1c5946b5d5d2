//! [`LayeredRateLimiter`]: several limits on one request, as seed 003 layers a global
//! burst limit over a per-IP limit.

use std::sync::Arc;

use async_trait::async_trait;
use bedrock_chat_core::{Decision, Quota, RateLimitError, RateLimiter};

/// Which key a layer counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerScope {
    /// The caller's own key (a user, an IP).
    PerKey,
    /// One key shared by every caller: a global limit.
    Shared(String),
}

#[derive(Clone)]
struct Layer {
    limiter: Arc<dyn RateLimiter>,
    scope: LayerScope,
}

impl Layer {
    fn key<'a>(&'a self, key: &'a str) -> &'a str {
        match &self.scope {
            LayerScope::PerKey => key,
            LayerScope::Shared(shared) => shared,
        }
    }
}

/// Several limiters applied to one request: it is allowed only if every layer allows it,
/// and a refusal by one layer gives back what the layers before it had counted, so a
/// refused request uses up no layer.
///
/// The decision reported is the refusing layer's, or, when all allow, the one with the
/// fewest units remaining. [`quota`](RateLimiter::quota) is the first layer's.
///
/// ```
/// use std::sync::Arc;
/// use bedrock_chat_core::{Quota, RateLimiter};
/// use bedrock_chat_ratelimit::{InMemoryRateLimiter, LayeredRateLimiter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Seed 003: 10 requests per minute per IP, and 100 per second over all IPs.
/// let limiter = LayeredRateLimiter::per_key(Arc::new(InMemoryRateLimiter::new(Quota::per_minute(10)?)))
///     .and_shared("global", Arc::new(InMemoryRateLimiter::new(Quota::per_second(100)?)));
/// assert!(limiter.check("198.51.100.7", 1).await?.allowed);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LayeredRateLimiter {
    layers: Vec<Layer>,
}

impl std::fmt::Debug for LayeredRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.layers
                    .iter()
                    .map(|l| (l.limiter.backend(), l.limiter.quota(), &l.scope)),
            )
            .finish()
    }
}

impl LayeredRateLimiter {
    /// A first layer counting each caller's key. Layers are checked in the order they
    /// are added.
    pub fn per_key(limiter: Arc<dyn RateLimiter>) -> Self {
        Self {
            layers: vec![Layer {
                limiter,
                scope: LayerScope::PerKey,
            }],
        }
    }

    /// A first layer counting one key, `name`, for every caller.
    pub fn shared(name: impl Into<String>, limiter: Arc<dyn RateLimiter>) -> Self {
        Self {
            layers: vec![Layer {
                limiter,
                scope: LayerScope::Shared(name.into()),
            }],
        }
    }

    /// Adds a layer counting each caller's key.
    pub fn and_per_key(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.layers.push(Layer {
            limiter,
            scope: LayerScope::PerKey,
        });
        self
    }

    /// Adds a layer counting one key, `name`, for every caller.
    pub fn and_shared(mut self, name: impl Into<String>, limiter: Arc<dyn RateLimiter>) -> Self {
        self.layers.push(Layer {
            limiter,
            scope: LayerScope::Shared(name.into()),
        });
        self
    }

    /// Unreachable in practice (there is always a first layer), but a value rather than
    /// a panic: the first layer's full quota.
    fn tightest_of_none(&self) -> Decision {
        let quota = self.quota();
        quota.decision(true, 0, quota.window_at(0))
    }

    /// Gives back what the first `count` layers counted; a failure here is logged, not
    /// returned, as the caller's answer (the refusal) stands.
    async fn roll_back(&self, key: &str, cost: u64, count: usize) {
        for layer in &self.layers[..count] {
            if let Err(error) = layer.limiter.refund(layer.key(key), cost).await {
                tracing::warn!(
                    key = layer.key(key),
                    cost,
                    error = %error,
                    "could not give back units counted for a refused request"
                );
            }
        }
    }
}

/// The tighter of two decisions: a refusal over an allowance, then fewer units left,
/// then a later reset.
fn tighter(a: Decision, b: Decision) -> Decision {
    match (a.allowed, b.allowed) {
        (true, false) => b,
        (false, true) => a,
        _ if b.remaining < a.remaining => b,
        _ if b.remaining == a.remaining && b.reset_after > a.reset_after => b,
        _ => a,
    }
}

#[async_trait]
impl RateLimiter for LayeredRateLimiter {
    fn backend(&self) -> &'static str {
        "layered"
    }

    fn quota(&self) -> Quota {
        // Every constructor adds a first layer.
        self.layers[0].limiter.quota()
    }

    async fn check(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        let mut result: Option<Decision> = None;
        for (i, layer) in self.layers.iter().enumerate() {
            match layer.limiter.check(layer.key(key), cost).await {
                Ok(decision) if decision.allowed => {
                    result = Some(result.map_or(decision, |r| tighter(r, decision)));
                }
                Ok(refused) => {
                    self.roll_back(key, cost, i).await;
                    return Ok(refused);
                }
                Err(error) => {
                    self.roll_back(key, cost, i).await;
                    return Err(error);
                }
            }
        }
        Ok(result.unwrap_or_else(|| self.tightest_of_none()))
    }

    async fn charge(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        let mut result: Option<Decision> = None;
        for layer in &self.layers {
            let decision = layer.limiter.charge(layer.key(key), cost).await?;
            result = Some(result.map_or(decision, |r| tighter(r, decision)));
        }
        Ok(result.unwrap_or_else(|| self.tightest_of_none()))
    }

    async fn refund(&self, key: &str, cost: u64) -> Result<(), RateLimitError> {
        for layer in &self.layers {
            layer.limiter.refund(layer.key(key), cost).await?;
        }
        Ok(())
    }

    /// Pings every layer; the first that fails answers.
    async fn ping(&self) -> Result<(), RateLimitError> {
        for layer in &self.layers {
            layer.limiter.ping().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryRateLimiter;
    use bedrock_chat_core::MockRateLimiter;

    fn memory(limit: u64) -> InMemoryRateLimiter {
        InMemoryRateLimiter::new(Quota::per_minute(limit).unwrap())
    }

    #[tokio::test]
    async fn a_refusal_by_one_layer_uses_up_no_other() {
        let per_ip = memory(2);
        let global = memory(3);
        let limiter = LayeredRateLimiter::per_key(Arc::new(per_ip.clone()))
            .and_shared("global", Arc::new(global.clone()));
        assert!(limiter.check("a", 1).await.unwrap().allowed);
        assert!(limiter.check("a", 1).await.unwrap().allowed);
        // The per-IP layer refuses "a": the global layer must not count it.
        let refused = limiter.check("a", 1).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(
            refused.limit, 2,
            "the refusing layer's decision is reported"
        );
        assert_eq!(global.check_now("global", 0).unwrap().remaining, 1);
        // The global layer refuses "c" after "b": the per-IP count of "c" is given back.
        assert!(limiter.check("b", 1).await.unwrap().allowed);
        let refused = limiter.check("c", 1).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.limit, 3);
        assert_eq!(per_ip.check_now("c", 0).unwrap().remaining, 2);
    }

    #[tokio::test]
    async fn the_tightest_allowance_is_reported() {
        let limiter = LayeredRateLimiter::per_key(Arc::new(memory(10)))
            .and_shared("global", Arc::new(memory(3)));
        let d = limiter.check("k", 1).await.unwrap();
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining), (3, 2));
    }

    #[tokio::test]
    async fn a_failing_layer_gives_back_the_others_and_reports_the_error() {
        let first = memory(5);
        let mut broken = MockRateLimiter::new();
        broken.expect_check().returning(|_, _| {
            Err(RateLimitError::Unavailable {
                backend: "mock",
                source: "down".into(),
            })
        });
        let limiter =
            LayeredRateLimiter::per_key(Arc::new(first.clone())).and_per_key(Arc::new(broken));
        let err = limiter.check("k", 2).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(first.check_now("k", 0).unwrap().remaining, 5);
    }

    #[tokio::test]
    async fn charges_reach_every_layer() {
        let (a, b) = (memory(100), memory(50));
        let limiter =
            LayeredRateLimiter::per_key(Arc::new(a.clone())).and_shared("all", Arc::new(b.clone()));
        let d = limiter.charge("k", 60).await.unwrap();
        assert!(!d.allowed, "the 50 layer is overdrawn");
        assert_eq!(a.check_now("k", 0).unwrap().remaining, 40);
        assert!(!b.check_now("all", 0).unwrap().allowed);
    }

    #[tokio::test]
    async fn ping_fails_when_any_layer_is_down() {
        let mut broken = MockRateLimiter::new();
        broken.expect_ping().returning(|| {
            Err(RateLimitError::Unavailable {
                backend: "mock",
                source: "down".into(),
            })
        });
        let healthy = LayeredRateLimiter::per_key(Arc::new(memory(5)));
        assert!(healthy.ping().await.is_ok());
        let limiter = healthy.and_shared("global", Arc::new(broken));
        assert!(matches!(
            limiter.ping().await,
            Err(RateLimitError::Unavailable { .. })
        ));
    }
}
