//! Several limits on one request, as seed 003 layers a global burst limit over a per-IP
//! limit.
//!
//! A layered decision is all or nothing: the request is counted by every layer or by
//! none. Backends that can make that one atomic step build a layered limiter natively from
//! [`Layers`] (quotas and scopes): `InMemoryRateLimiter::layered` (one lock order over all
//! layers), and `Layers` given in place of a `Quota` to `RedisRateLimiter::connect` (one
//! Lua script over all counters, one `EVALSHA`) or `DynamoDbRateLimiter::new` (one
//! `TransactWriteItems` with a condition per layer). [`LayeredRateLimiter`] is the generic
//! fallback over arbitrary limiters, for backends that cannot: it checks layer by layer
//! and refunds, so under contention it can refuse a request that a native layered limiter
//! would allow.

use std::sync::Arc;

use async_trait::async_trait;
use bedrock_chat_core::limiter::Window;
use bedrock_chat_core::{Decision, Quota, RateLimitError, RateLimiter};

/// Which key a layer counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerScope {
    /// The caller's own key (a user, an IP).
    PerKey,
    /// One key shared by every caller: a global limit.
    Shared(String),
}

impl LayerScope {
    /// The key this layer counts for a request keyed `key`.
    pub(crate) fn key<'a>(&'a self, key: &'a str) -> &'a str {
        match self {
            Self::PerKey => key,
            Self::Shared(shared) => shared,
        }
    }
}

/// One layer of [`Layers`]: a quota and the key it counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerQuota {
    /// Which key the layer counts.
    pub scope: LayerScope,
    /// What the layer allows per window.
    pub quota: Quota,
}

/// The layers of a layered limit, for a backend to enforce as one atomic step: a
/// request is allowed only if every layer has room for it, and then counted by all of
/// them. There is always at least one layer.
///
/// ```
/// use bedrock_chat_core::{Quota, RateLimiter};
/// use bedrock_chat_ratelimit::{InMemoryRateLimiter, Layers};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Seed 003: 10 requests per minute per IP, and 100 per second over all IPs.
/// let layers = Layers::per_key(Quota::per_minute(10)?).and_shared("global", Quota::per_second(100)?);
/// let limiter = InMemoryRateLimiter::layered(layers);
/// assert!(limiter.check("198.51.100.7", 1).await?.allowed);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layers {
    layers: Vec<LayerQuota>,
}

impl Layers {
    /// A first layer counting each caller's key under `quota`.
    pub fn per_key(quota: Quota) -> Self {
        Self {
            layers: vec![LayerQuota {
                scope: LayerScope::PerKey,
                quota,
            }],
        }
    }

    /// A first layer counting one key, `name`, for every caller.
    pub fn shared(name: impl Into<String>, quota: Quota) -> Self {
        Self {
            layers: vec![LayerQuota {
                scope: LayerScope::Shared(name.into()),
                quota,
            }],
        }
    }

    /// Adds a layer counting each caller's key.
    pub fn and_per_key(mut self, quota: Quota) -> Self {
        self.layers.push(LayerQuota {
            scope: LayerScope::PerKey,
            quota,
        });
        self
    }

    /// Adds a layer counting one key, `name`, for every caller.
    pub fn and_shared(mut self, name: impl Into<String>, quota: Quota) -> Self {
        self.layers.push(LayerQuota {
            scope: LayerScope::Shared(name.into()),
            quota,
        });
        self
    }

    /// The layers, in the order they were added.
    pub fn as_slice(&self) -> &[LayerQuota] {
        &self.layers
    }

    /// The first layer's quota: what a layered limiter reports as its
    /// [`quota`](RateLimiter::quota).
    pub fn first_quota(&self) -> Quota {
        // Every constructor adds a first layer.
        self.layers[0].quota
    }

    /// Refuses a cost that some layer can never hold.
    ///
    /// # Errors
    /// [`RateLimitError::InsufficientCapacity`] naming the first layer whose whole limit
    /// is below `cost`.
    pub fn check_cost(&self, cost: u64) -> Result<(), RateLimitError> {
        self.layers
            .iter()
            .try_for_each(|l| l.quota.check_cost(cost))
    }
}

impl From<Quota> for Layers {
    /// One layer counting each caller's key: a plain limiter.
    fn from(quota: Quota) -> Self {
        Self::per_key(quota)
    }
}

/// What a call does to the counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Spend the cost in every layer if it fits in all of them, else spend nothing.
    Check,
    /// Spend the cost in every layer whatever is left.
    Charge,
    /// Give back up to the cost in every layer.
    Refund,
}

impl Mode {
    /// The name the Redis scripts take.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::Charge => "charge",
            Self::Refund => "refund",
        }
    }
}

/// One layer's rule: with `used` spent in `window`, the decision and the units spent
/// after `mode` with `cost`.
pub(crate) fn decide_one(
    quota: &Quota,
    used: u64,
    window: Window,
    mode: Mode,
    cost: u64,
) -> (Decision, u64) {
    match mode {
        Mode::Check => quota.decide(used, cost, window),
        Mode::Charge => {
            let after = used.saturating_add(cost);
            (quota.decision(after <= quota.limit(), after, window), after)
        }
        Mode::Refund => {
            let after = used.saturating_sub(cost);
            (quota.decision(true, after, window), after)
        }
    }
}

/// The all-or-nothing rule over layers, shared by every native layered limiter: given
/// each layer's quota, window and units spent, the decision to report and the units each
/// layer holds after `mode` with `cost`. A check spends in every layer or in none; the
/// decision is the most restrictive layer's (see [`tightest`]). `None` only for no layers,
/// which [`Layers`] never has.
pub(crate) fn decide_layers(
    layers: &[(Quota, Window)],
    used: &[u64],
    mode: Mode,
    cost: u64,
) -> Option<(Decision, Vec<u64>)> {
    let outcomes: Vec<(Decision, u64)> = layers
        .iter()
        .zip(used)
        .map(|((quota, window), &used)| decide_one(quota, used, *window, mode, cost))
        .collect();
    if mode == Mode::Check && outcomes.iter().any(|(d, _)| !d.allowed) {
        // Refused: nothing is spent, and the refusing layers speak.
        let decision = tightest(outcomes.iter().map(|(d, _)| *d).filter(|d| !d.allowed))?;
        return Some((decision, used.to_vec()));
    }
    let decision = tightest(outcomes.iter().map(|(d, _)| *d))?;
    Some((
        decision,
        outcomes.into_iter().map(|(_, after)| after).collect(),
    ))
}

/// The error for a layered limiter without layers, which [`Layers`] cannot build.
pub(crate) fn no_layers(backend: &'static str) -> RateLimitError {
    RateLimitError::Backend {
        backend,
        source: "a layered limiter needs at least one layer".into(),
    }
}

/// The most restrictive of several layers' decisions: a refusal over an allowance;
/// between refusals the longer wait, then fewer units left; between allowances fewer
/// units left, then the later reset. `None` for no decisions.
pub(crate) fn tightest(decisions: impl IntoIterator<Item = Decision>) -> Option<Decision> {
    decisions.into_iter().reduce(tighter)
}

fn tighter(a: Decision, b: Decision) -> Decision {
    match (a.allowed, b.allowed) {
        (true, false) => b,
        (false, true) => a,
        (false, false) if b.retry_after != a.retry_after => {
            if b.retry_after > a.retry_after {
                b
            } else {
                a
            }
        }
        _ if b.remaining < a.remaining => b,
        _ if b.remaining == a.remaining && b.reset_after > a.reset_after => b,
        _ => a,
    }
}

#[derive(Clone)]
struct Layer {
    limiter: Arc<dyn RateLimiter>,
    scope: LayerScope,
}

impl Layer {
    fn key<'a>(&'a self, key: &'a str) -> &'a str {
        self.scope.key(key)
    }
}

/// Several limiters applied to one request: it is allowed only if every layer allows it,
/// and a refusal by one layer gives back what the layers before it had counted, so a
/// refused request uses up no layer once the call returns.
///
/// This is the generic fallback, over any [`RateLimiter`]s (even of different backends).
/// It is not atomic: while a request is being checked, the units it counted in earlier
/// layers are taken, so a concurrent request can be refused by a layer that, a moment
/// later, turns out to have had room. Where all layers live in one backend, build the
/// limiter natively from [`Layers`] instead (`InMemoryRateLimiter::layered`, or `Layers`
/// in place of a `Quota` for `RedisRateLimiter::connect` and `DynamoDbRateLimiter::new`),
/// which decides all layers in one atomic step.
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
