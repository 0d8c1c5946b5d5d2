//! The [`RateLimiter`] trait, its [`Quota`] and [`Decision`], and the fixed-window rule
//! every backend implements.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::{InvalidInput, RateLimitError};

/// The longest rate-limit key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 512;

/// How much may be spent per window: `limit` units (requests, tokens) every `window`.
///
/// Windows are fixed and aligned to the Unix epoch (a one-minute window runs from :00 to
/// :59), as seed 003's minute buckets are, so every backend and every process agrees on
/// which window a moment falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Quota {
    limit: u64,
    window_ms: u64,
}

impl Quota {
    /// `limit` units per `window`.
    ///
    /// # Errors
    /// [`InvalidInput`] for a zero limit or a window under one millisecond.
    pub fn new(limit: u64, window: Duration) -> Result<Self, InvalidInput> {
        if limit == 0 {
            return Err(InvalidInput::new("limit", "must be at least 1"));
        }
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        if window_ms == 0 || window_ms > i64::MAX as u64 {
            return Err(InvalidInput::new(
                "window",
                "must be at least one millisecond",
            ));
        }
        Ok(Self { limit, window_ms })
    }

    /// `limit` per second.
    ///
    /// # Errors
    /// [`InvalidInput`] for a zero limit.
    pub fn per_second(limit: u64) -> Result<Self, InvalidInput> {
        Self::new(limit, Duration::from_secs(1))
    }

    /// `limit` per minute.
    ///
    /// # Errors
    /// [`InvalidInput`] for a zero limit.
    pub fn per_minute(limit: u64) -> Result<Self, InvalidInput> {
        Self::new(limit, Duration::from_secs(60))
    }

    /// `limit` per hour.
    ///
    /// # Errors
    /// [`InvalidInput`] for a zero limit.
    pub fn per_hour(limit: u64) -> Result<Self, InvalidInput> {
        Self::new(limit, Duration::from_secs(3600))
    }

    /// `limit` per day (UTC days).
    ///
    /// # Errors
    /// [`InvalidInput`] for a zero limit.
    pub fn per_day(limit: u64) -> Result<Self, InvalidInput> {
        Self::new(limit, Duration::from_secs(86_400))
    }

    /// Units per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    /// The window's length in milliseconds.
    pub fn window_millis(&self) -> u64 {
        self.window_ms
    }

    /// The window that `now_ms` (milliseconds since the epoch) falls in.
    pub fn window_at(&self, now_ms: i64) -> Window {
        let length = self.window_ms_i64();
        let index = now_ms.div_euclid(length);
        let into = now_ms - index * length;
        Window {
            index,
            millis_to_reset: self.window_ms - into.unsigned_abs(),
        }
    }

    fn window_ms_i64(&self) -> i64 {
        // Quota::new keeps window_ms within i64.
        i64::try_from(self.window_ms).unwrap_or(i64::MAX)
    }

    /// Refuses a cost that no window can ever hold.
    ///
    /// # Errors
    /// [`RateLimitError::InsufficientCapacity`] when `cost > limit`.
    pub fn check_cost(&self, cost: u64) -> Result<(), RateLimitError> {
        if cost > self.limit {
            return Err(RateLimitError::InsufficientCapacity {
                cost,
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// The fixed-window rule, shared by every backend: with `used` units spent in the
    /// current window, may `cost` more be spent?
    ///
    /// A check is allowed when something is left (`used < limit`) and the cost fits
    /// (`used + cost <= limit`); so a zero-cost check asks "is anything left?" without
    /// spending. Returns the decision and the units spent after it.
    pub fn decide(&self, used: u64, cost: u64, window: Window) -> (Decision, u64) {
        let allowed = used < self.limit && cost <= self.limit - used;
        let used_after = if allowed { used + cost } else { used };
        (self.decision(allowed, used_after, window), used_after)
    }

    /// The decision to report when `used_after` units are spent in `window`.
    pub fn decision(&self, allowed: bool, used_after: u64, window: Window) -> Decision {
        let reset_after = Duration::from_millis(window.millis_to_reset);
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(used_after),
            window: self.window(),
            reset_after,
            retry_after: (!allowed).then_some(reset_after),
        }
    }
}

/// A fixed window: which one, and how long until it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The window's number: milliseconds since the epoch divided by the window's length.
    pub index: i64,
    /// Milliseconds until the window ends (1 to the window's length).
    pub millis_to_reset: u64,
}

/// Checks a rate-limit key: non-empty and at most [`MAX_KEY_LEN`] bytes.
///
/// # Errors
/// [`InvalidInput`] on `key` otherwise.
pub fn validate_key(key: &str) -> Result<(), InvalidInput> {
    if key.is_empty() {
        return Err(InvalidInput::new("key", "must not be empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(InvalidInput::new(
            "key",
            format!("must be at most {MAX_KEY_LEN} bytes"),
        ));
    }
    Ok(())
}

/// A limiter's answer: allowed or not, and what the HTTP layer needs for
/// `X-RateLimit-*`, `RateLimit` / `RateLimit-Policy` and `Retry-After`.
///
/// Made by [`Quota::decision`] (or [`Quota::decide`]), so that a new field breaks no
/// limiter outside this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request may go ahead (its cost has been spent if so).
    pub allowed: bool,
    /// Units per window.
    pub limit: u64,
    /// Units left in the current window after this decision.
    pub remaining: u64,
    /// The window's length.
    pub window: Duration,
    /// Time until the current window ends and the count starts again.
    pub reset_after: Duration,
    /// When refused: how long to wait before trying again.
    pub retry_after: Option<Duration>,
}

impl Decision {
    /// `retry_after` in whole seconds, rounded up (as `Retry-After` wants it).
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(ceil_secs)
    }

    /// `reset_after` in whole seconds, rounded up.
    pub fn reset_after_secs(&self) -> u64 {
        ceil_secs(self.reset_after)
    }

    /// The window in whole seconds, rounded up.
    pub fn window_secs(&self) -> u64 {
        ceil_secs(self.window)
    }

    /// The HTTP response headers for this decision, as `(name, value)` pairs:
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Window` (seconds), as
    /// seed 003 sends them; the IETF `RateLimit-Policy` and `RateLimit` fields
    /// (draft-ietf-httpapi-ratelimit-headers) for the policy named `policy`; and
    /// `Retry-After` (seconds) when refused.
    ///
    /// ```
    /// use bedrock_chat_core::Quota;
    /// let quota = Quota::per_minute(10)?;
    /// let decision = quota.decision(true, 4, quota.window_at(15_000));
    /// let headers = decision.headers("per-user");
    /// assert!(headers.contains(&("X-RateLimit-Remaining", "6".to_owned())));
    /// assert!(headers.contains(&("RateLimit", "\"per-user\";r=6;t=45".to_owned())));
    /// # Ok::<(), bedrock_chat_core::InvalidInput>(())
    /// ```
    pub fn headers(&self, policy: &str) -> Vec<(&'static str, String)> {
        // A structured-field string: printable ASCII, with `"` and `\` escaped.
        let mut name = String::with_capacity(policy.len());
        for c in policy.chars().filter(|c| c.is_ascii_graphic() || *c == ' ') {
            if c == '"' || c == '\\' {
                name.push('\\');
            }
            name.push(c);
        }
        let mut headers = vec![
            ("X-RateLimit-Limit", self.limit.to_string()),
            ("X-RateLimit-Remaining", self.remaining.to_string()),
            ("X-RateLimit-Window", self.window_secs().to_string()),
            (
                "RateLimit-Policy",
                format!("\"{name}\";q={};w={}", self.limit, self.window_secs()),
            ),
            (
                "RateLimit",
                format!(
                    "\"{name}\";r={};t={}",
                    self.remaining,
                    self.reset_after_secs()
                ),
            ),
        ];
        if let Some(secs) = self.retry_after_secs() {
            headers.push(("Retry-After", secs.to_string()));
        }
        headers
    }

    /// The message of a 429 answer, in seed 003's words: "Too many requests. Maximum 10
    /// requests per 60 seconds."
    pub fn refusal_message(&self) -> String {
        format!(
            "Too many requests. Maximum {} requests per {} seconds.",
            self.limit,
            self.window_secs()
        )
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Counts what each key spends per window and says whether a request may go ahead.
///
/// Exact under concurrency: with a limit of N, N requests pass in a window and the next
/// is refused, also across processes sharing one backend. Being over the limit is a
/// [`Decision`]; an error means the limiter itself could not decide.
///
/// ```
/// # async fn demo(limiter: &dyn bedrock_chat_core::RateLimiter) -> Result<(), bedrock_chat_core::RateLimitError> {
/// let decision = limiter.check("user:42", 1).await?;
/// if !decision.allowed {
///     println!("retry in {}s", decision.retry_after_secs().unwrap_or(0));
/// }
/// # Ok(()) }
/// ```
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// The backend's name (`memory`, `redis`, ...).
    fn backend(&self) -> &'static str;

    /// The quota it enforces.
    fn quota(&self) -> Quota;

    /// Spends `cost` units of `key`'s current window if they fit, else spends nothing.
    /// A zero cost asks whether anything is left.
    ///
    /// # Errors
    /// [`RateLimitError::InsufficientCapacity`] when `cost` exceeds the whole limit;
    /// [`RateLimitError::Unavailable`] when the backend does not answer.
    async fn check(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError>;

    /// Spends `cost` units whatever is left: for costs known only afterwards, such as
    /// the tokens a reply used. The window may be overdrawn; later checks are refused
    /// until it resets.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the backend does not answer.
    async fn charge(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError>;

    /// Gives back up to `cost` units spent in `key`'s current window (the count never
    /// goes below zero): for units counted for a request that then did not go ahead, such
    /// as one refused by another layer of a layered limit.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the backend does not answer.
    async fn refund(&self, key: &str, cost: u64) -> Result<(), RateLimitError>;

    /// Checks that the backend answers, for health checks. The default answers `Ok` at
    /// once: right for limiters that keep their counts in process, and what a third-party
    /// backend gets until it implements a real check.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the backend does not answer.
    async fn ping(&self) -> Result<(), RateLimitError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A third-party limiter written against the required methods only.
    struct Minimal(Quota);

    #[async_trait]
    impl RateLimiter for Minimal {
        fn backend(&self) -> &'static str {
            "minimal"
        }

        fn quota(&self) -> Quota {
            self.0
        }

        async fn check(&self, _key: &str, _cost: u64) -> Result<Decision, RateLimitError> {
            Ok(self.0.decide(0, 0, self.0.window_at(0)).0)
        }

        async fn charge(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
            self.check(key, cost).await
        }

        async fn refund(&self, _key: &str, _cost: u64) -> Result<(), RateLimitError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_limiter_that_does_not_override_ping_answers_ok() {
        let limiter: &dyn RateLimiter = &Minimal(Quota::per_minute(1).unwrap());
        assert!(limiter.ping().await.is_ok());
    }

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let q = Quota::per_minute(10).unwrap();
        assert_eq!(
            q.window_at(59_999),
            Window {
                index: 0,
                millis_to_reset: 1
            }
        );
        assert_eq!(
            q.window_at(60_000),
            Window {
                index: 1,
                millis_to_reset: 60_000
            }
        );
        assert_eq!(q.window_at(119_999).millis_to_reset, 1);
        assert_eq!(
            q.window_at(-1),
            Window {
                index: -1,
                millis_to_reset: 1
            }
        );
    }

    #[test]
    fn zero_cost_asks_whether_anything_is_left() {
        let q = Quota::per_minute(10).unwrap();
        let w = q.window_at(0);
        assert!(q.decide(9, 0, w).0.allowed);
        assert!(!q.decide(10, 0, w).0.allowed);
        assert!(!q.decide(12, 0, w).0.allowed);
        let (d, used) = q.decide(8, 3, w);
        assert!(!d.allowed);
        assert_eq!(used, 8);
        assert_eq!(d.remaining, 2);
    }

    #[test]
    fn quota_rejects_nonsense() {
        assert!(Quota::per_minute(0).is_err());
        assert!(Quota::new(1, Duration::from_micros(10)).is_err());
        assert!(validate_key("").is_err());
        assert!(validate_key(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn a_refusal_carries_retry_after_and_the_seed_003_message() {
        let q = Quota::per_minute(10).unwrap();
        let d = q.decision(false, 10, q.window_at(59_000));
        let headers = d.headers("ip \"a\"");
        assert!(headers.contains(&("Retry-After", "1".to_owned())));
        assert!(headers.contains(&("X-RateLimit-Window", "60".to_owned())));
        assert!(headers.contains(&("RateLimit-Policy", "\"ip \\\"a\\\"\";q=10;w=60".to_owned())));
        assert_eq!(
            d.refusal_message(),
            "Too many requests. Maximum 10 requests per 60 seconds."
        );
        let allowed = q.decision(true, 1, q.window_at(0));
        assert!(allowed
            .headers("p")
            .iter()
            .all(|(name, _)| *name != "Retry-After"));
    }

    #[test]
    fn retry_after_rounds_up() {
        let q = Quota::per_minute(1).unwrap();
        let d = q.decision(false, 1, q.window_at(500));
        assert_eq!(d.retry_after, Some(Duration::from_millis(59_500)));
        assert_eq!(d.retry_after_secs(), Some(60));
    }
}
