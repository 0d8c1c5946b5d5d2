//! A rate limiter from a URL: [`from_url`] and [`LimiterUrl`], so that every host (server,
//! CLI, Lambda) accepts the same `--limiter` values and reports a bad one the same way.
//!
//! | URL | backend | feature |
//! |---|---|---|
//! | `memory` | [`InMemoryRateLimiter`] | always |
//! | `redis://…`, `rediss://…`, optional `?prefix=KEY_PREFIX` | `RedisRateLimiter` | `redis` |
//! | `dynamodb://TABLE?endpoint=URL&region=REGION` (both optional) | `DynamoDbRateLimiter` | `dynamodb` |
//!
//! The host gives the quota (or [`Layers`], which Redis and DynamoDB decide in one atomic
//! step) and a key prefix, so that limiters with different quotas sharing one server or
//! table never share counters; a `prefix` in a Redis URL goes in front of it.
//!
//! Parsing ([`LimiterUrl::parse`]) checks the syntax whatever features are on; connecting
//! refuses a backend whose feature this build lacks with
//! [`LimiterUrlError::FeatureDisabled`], before any I/O. A missing DynamoDB table is
//! created, as a server start wants.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bedrock_chat_core::backend::error_chain;
pub use bedrock_chat_core::backend::url::UrlPart;
use bedrock_chat_core::backend::url::{self as parts, InvalidUrl};
use bedrock_chat_core::{RateLimitError, RateLimiter};

use crate::{InMemoryRateLimiter, Layers};

/// The URL forms [`LimiterUrl::parse`] accepts, for error messages.
const EXPECTED: &str = "memory, redis://..., rediss://... or dynamodb://TABLE";

/// A parsed limiter URL: which backend, and what it needs to connect.
///
/// ```
/// use bedrock_chat_ratelimit::LimiterUrl;
///
/// let url: LimiterUrl = "dynamodb://rate-limits?endpoint=http://127.0.0.1:8000".parse()?;
/// assert_eq!(
///     url,
///     LimiterUrl::DynamoDb {
///         table: "rate-limits".into(),
///         endpoint: Some("http://127.0.0.1:8000".into()),
///         region: None,
///     }
/// );
/// assert_eq!(url.feature(), Some("dynamodb"));
/// # Ok::<(), bedrock_chat_ratelimit::LimiterUrlError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimiterUrl {
    /// `memory`: an [`InMemoryRateLimiter`], counting in this process only.
    Memory,
    /// `redis://…` or `rediss://…` (TLS, where the redis crate's TLS feature is on), with
    /// an optional `prefix` query parameter.
    Redis {
        /// The URL without the `prefix` parameter, as the redis crate takes it.
        url: String,
        /// Goes in front of the host's key prefix (`prefix=`).
        prefix: Option<String>,
    },
    /// `dynamodb://TABLE?endpoint=URL&region=REGION`.
    DynamoDb {
        /// The table (created on connect when missing).
        table: String,
        /// Where DynamoDB answers (`endpoint=`, e.g. a local server); the AWS default when
        /// absent.
        endpoint: Option<String>,
        /// The AWS region (`region=`); from the environment when absent.
        region: Option<String>,
    },
}

/// Credentials may sit in a Redis URL: print only what is not secret.
impl fmt::Debug for LimiterUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::Redis { prefix, .. } => f
                .debug_struct("Redis")
                .field("prefix", prefix)
                .finish_non_exhaustive(),
            Self::DynamoDb {
                table,
                endpoint,
                region,
            } => f
                .debug_struct("DynamoDb")
                .field("table", table)
                .field("endpoint", endpoint)
                .field("region", region)
                .finish(),
        }
    }
}

/// Why [`from_url`] or [`LimiterUrl`] refused a URL, or could not connect to what it
/// named.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimiterUrlError {
    /// The URL names no limiter backend (store-only schemes such as `postgres://`
    /// included).
    #[error("unknown rate limiter URL scheme `{scheme}`: expected {EXPECTED}")]
    UnknownScheme {
        /// The scheme as given.
        scheme: String,
    },
    /// One part of the URL is malformed.
    #[error("bad {part} in the rate limiter URL: {reason}")]
    Invalid {
        /// Which part.
        part: UrlPart,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend exists but this build of `bedrock-chat-ratelimit` leaves it out.
    #[error(
        "`{backend}` rate limiter URLs need the `{feature}` feature of bedrock-chat-ratelimit, \
         which this build does not enable"
    )]
    FeatureDisabled {
        /// The backend the URL names.
        backend: &'static str,
        /// The Cargo feature that compiles it in.
        feature: &'static str,
    },
    /// The URL is well formed but connecting (or creating the table) failed. The message
    /// includes the causes, so a host can print it as it is.
    #[error("could not connect the {backend} rate limiter: {}", error_chain(error))]
    Connect {
        /// The backend the URL names.
        backend: &'static str,
        /// The limiter's error.
        error: RateLimitError,
    },
}

impl LimiterUrlError {
    /// Whether trying again later may succeed (the backend did not answer).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Connect { error, .. } if error.is_retryable())
    }
}

impl From<InvalidUrl> for LimiterUrlError {
    fn from(error: InvalidUrl) -> Self {
        Self::Invalid {
            part: error.part,
            reason: error.reason,
        }
    }
}

impl LimiterUrl {
    /// Parses `url` (see the [table](crate::url)). Only the syntax is checked, whatever
    /// features are on; [`connect`](Self::connect) checks the feature.
    ///
    /// # Errors
    /// [`LimiterUrlError::UnknownScheme`] for a scheme that names no limiter backend;
    /// [`LimiterUrlError::Invalid`] naming the malformed part.
    pub fn parse(url: &str) -> Result<Self, LimiterUrlError> {
        let (scheme, rest) = parts::split_scheme(url)?;
        match scheme.as_str() {
            "memory" => {
                parts::check_memory(rest)?;
                Ok(Self::Memory)
            }
            "redis" | "rediss" => {
                let redis = parts::parse_redis(&scheme, rest)?;
                Ok(Self::Redis {
                    url: redis.url,
                    prefix: redis.prefix,
                })
            }
            "dynamodb" => {
                let dynamodb = parts::parse_dynamodb(rest)?;
                Ok(Self::DynamoDb {
                    table: dynamodb.table,
                    endpoint: dynamodb.endpoint,
                    region: dynamodb.region,
                })
            }
            _ => Err(LimiterUrlError::UnknownScheme { scheme }),
        }
    }

    /// The backend's name, as [`RateLimiter::backend`] reports it.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis { .. } => "redis",
            Self::DynamoDb { .. } => "dynamodb",
        }
    }

    /// The Cargo feature of `bedrock-chat-ratelimit` the backend needs; `None` for
    /// `memory`.
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            Self::Memory => None,
            other => Some(other.backend()),
        }
    }

    /// Whether this build includes the backend.
    pub fn is_enabled(&self) -> bool {
        match self {
            Self::Memory => true,
            Self::Redis { .. } => cfg!(feature = "redis"),
            Self::DynamoDb { .. } => cfg!(feature = "dynamodb"),
        }
    }

    /// Connects a limiter enforcing `layers` (a [`Quota`](bedrock_chat_core::Quota) or
    /// [`Layers`]) with its keys under `prefix` (the backend's default when empty; unused
    /// by `memory`). A missing DynamoDB table is created.
    ///
    /// # Errors
    /// [`LimiterUrlError::FeatureDisabled`] when this build lacks the backend (before any
    /// I/O); [`LimiterUrlError::Connect`] when the backend refuses or does not answer.
    pub async fn connect(
        &self,
        layers: impl Into<Layers>,
        prefix: &str,
    ) -> Result<Arc<dyn RateLimiter>, LimiterUrlError> {
        if !self.is_enabled() {
            return Err(LimiterUrlError::FeatureDisabled {
                backend: self.backend(),
                feature: self.backend(),
            });
        }
        let backend = self.backend();
        self.connect_enabled(layers.into(), prefix)
            .await
            .map_err(|error| LimiterUrlError::Connect { backend, error })
    }

    #[cfg_attr(
        not(any(feature = "redis", feature = "dynamodb")),
        allow(unused_variables)
    )]
    async fn connect_enabled(
        &self,
        layers: Layers,
        prefix: &str,
    ) -> Result<Arc<dyn RateLimiter>, RateLimitError> {
        match self {
            Self::Memory => Ok(Arc::new(InMemoryRateLimiter::layered(layers))),
            #[cfg(feature = "redis")]
            Self::Redis { url, prefix: outer } => {
                let mut config = crate::RedisLimiterConfig::default();
                if let Some(prefix) = joined(outer.as_deref(), prefix) {
                    config.prefix = prefix;
                }
                Ok(Arc::new(
                    crate::RedisRateLimiter::connect(url, layers, config).await?,
                ))
            }
            #[cfg(feature = "dynamodb")]
            Self::DynamoDb {
                table,
                endpoint,
                region,
            } => {
                dynamodb::connect(
                    table,
                    endpoint.as_deref(),
                    region.as_deref(),
                    layers,
                    prefix,
                )
                .await
            }
            // Refused by `connect` before this is called.
            #[allow(unreachable_patterns)]
            other => Err(RateLimitError::Unavailable {
                backend: other.backend(),
                source: "this build does not include the backend".into(),
            }),
        }
    }
}

/// The URL's prefix in front of the host's; `None` to keep the backend's default.
#[cfg(feature = "redis")]
fn joined(outer: Option<&str>, inner: &str) -> Option<String> {
    match (outer, inner) {
        (None, "") => None,
        (None, inner) => Some(inner.to_owned()),
        (Some(outer), "") => Some(outer.to_owned()),
        (Some(outer), inner) => Some(format!("{outer}:{inner}")),
    }
}

impl FromStr for LimiterUrl {
    type Err = LimiterUrlError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Self::parse(url)
    }
}

/// The rate limiter `url` names, connected and ready, enforcing `layers` (a
/// [`Quota`](bedrock_chat_core::Quota) or [`Layers`]) with its keys under `prefix` (the
/// backend's default when empty). See the [table](crate::url) of forms.
///
/// ```no_run
/// use bedrock_chat_core::Quota;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = bedrock_chat_ratelimit::from_url(
///     "redis://127.0.0.1:6379/?prefix=chat",
///     Quota::per_minute(10)?,
///     "requests",
/// )
/// .await?;
/// assert_eq!(limiter.backend(), "redis");
/// # Ok(()) }
/// ```
///
/// ```
/// use bedrock_chat_core::Quota;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = bedrock_chat_ratelimit::from_url("memory", Quota::per_minute(10)?, "requests").await?;
/// assert!(limiter.check("203.0.113.7", 1).await?.allowed);
/// let bad = bedrock_chat_ratelimit::from_url("dynamodb://x", Quota::per_minute(10)?, "r").await;
/// assert_eq!(
///     bad.err().map(|e| e.to_string()).as_deref(),
///     Some("bad table name in the rate limiter URL: `x` must be 3 to 255 characters long")
/// );
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`LimiterUrl::parse`] and [`LimiterUrl::connect`].
pub async fn from_url(
    url: &str,
    layers: impl Into<Layers>,
    prefix: &str,
) -> Result<Arc<dyn RateLimiter>, LimiterUrlError> {
    LimiterUrl::parse(url)?.connect(layers, prefix).await
}

#[cfg(feature = "dynamodb")]
mod dynamodb {
    use std::sync::Arc;

    use bedrock_chat_core::backend::dynamodb::{client, ensure_table};
    use bedrock_chat_core::{RateLimitError, RateLimiter};

    use crate::{DynamoDbRateLimiter, Layers};

    /// A limiter over `table`, created when missing.
    pub(super) async fn connect(
        table: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
        layers: Layers,
        prefix: &str,
    ) -> Result<Arc<dyn RateLimiter>, RateLimitError> {
        let client = client(endpoint, region).await;
        ensure_table(&client, table, || {
            DynamoDbRateLimiter::create_table(&client, table)
        })
        .await?;
        let mut limiter = DynamoDbRateLimiter::new(client, table, layers);
        if !prefix.is_empty() {
            limiter = limiter.with_prefix(prefix);
        }
        Ok(Arc::new(limiter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bedrock_chat_core::Quota;

    fn invalid(url: &str) -> (UrlPart, String) {
        match LimiterUrl::parse(url) {
            Err(LimiterUrlError::Invalid { part, reason }) => (part, reason),
            other => panic!("{url}: expected Invalid, got {other:?}"),
        }
    }

    fn dynamodb(table: &str, endpoint: Option<&str>, region: Option<&str>) -> LimiterUrl {
        LimiterUrl::DynamoDb {
            table: table.into(),
            endpoint: endpoint.map(Into::into),
            region: region.map(Into::into),
        }
    }

    fn quota() -> Quota {
        Quota::per_minute(2).unwrap()
    }

    #[test]
    fn memory_parses() {
        assert_eq!(LimiterUrl::parse("memory").unwrap(), LimiterUrl::Memory);
        assert_eq!(LimiterUrl::parse(" Memory ").unwrap(), LimiterUrl::Memory);
        assert_eq!(LimiterUrl::parse("memory://").unwrap(), LimiterUrl::Memory);
        assert_eq!(LimiterUrl::Memory.feature(), None);
        assert!(LimiterUrl::Memory.is_enabled());
        assert_eq!(invalid("memory:x").0, UrlPart::Path);
    }

    #[test]
    fn redis_forms_parse_and_the_prefix_is_taken_out() {
        assert_eq!(
            LimiterUrl::parse("redis://127.0.0.1:6379/").unwrap(),
            LimiterUrl::Redis {
                url: "redis://127.0.0.1:6379/".into(),
                prefix: None,
            }
        );
        assert_eq!(
            LimiterUrl::parse("rediss://user:pw@cache:6380/2?protocol=resp3&prefix=app%3A1")
                .unwrap(),
            LimiterUrl::Redis {
                url: "rediss://user:pw@cache:6380/2?protocol=resp3".into(),
                prefix: Some("app:1".into()),
            }
        );
        assert_eq!(
            LimiterUrl::parse("redis://cache").unwrap().feature(),
            Some("redis")
        );
    }

    #[test]
    fn redis_errors_name_the_part() {
        assert_eq!(invalid("redis://").0, UrlPart::Host);
        assert_eq!(invalid("redis:///0").0, UrlPart::Host);
        assert_eq!(invalid("redis:cache").0, UrlPart::Scheme);
        let prefix = UrlPart::Parameter("prefix".into());
        assert_eq!(invalid("redis://cache/?prefix=").0, prefix);
        assert_eq!(invalid("redis://cache/?prefix=a&prefix=b").0, prefix);
        assert_eq!(invalid("redis://cache/?prefix=%4").0, prefix);
    }

    #[test]
    fn dynamodb_forms_parse() {
        assert_eq!(
            LimiterUrl::parse("dynamodb://rate-limits").unwrap(),
            dynamodb("rate-limits", None, None)
        );
        assert_eq!(
            LimiterUrl::parse("DynamoDB://limits?region=ap-southeast-2&endpoint=https://ddb.local")
                .unwrap(),
            dynamodb("limits", Some("https://ddb.local"), Some("ap-southeast-2"))
        );
    }

    #[test]
    fn dynamodb_errors_name_the_table_or_the_parameter() {
        for url in [
            "dynamodb://",
            "dynamodb://no",
            "dynamodb://a/b",
            "dynamodb://a$b",
        ] {
            assert_eq!(invalid(url).0, UrlPart::Table, "{url}");
        }
        assert_eq!(invalid("dynamodb:limits").0, UrlPart::Scheme);
        let endpoint = UrlPart::Parameter("endpoint".into());
        assert_eq!(invalid("dynamodb://limits?endpoint=ddb.local").0, endpoint);
        assert_eq!(invalid("dynamodb://limits?endpoint=https://").0, endpoint);
        assert_eq!(
            invalid("dynamodb://limits?region=Europe").0,
            UrlPart::Parameter("region".into())
        );
        assert_eq!(
            invalid("dynamodb://limits?region=eu-west-1&region=eu-west-2").0,
            UrlPart::Parameter("region".into())
        );
        assert_eq!(
            invalid("dynamodb://limits?table=x").0,
            UrlPart::Parameter("table".into())
        );
    }

    #[test]
    fn store_only_and_unknown_schemes_are_refused() {
        for (url, scheme) in [
            ("sqlite:x.db", "sqlite"),
            ("postgres://localhost/chat", "postgres"),
            ("memcached://cache", "memcached"),
        ] {
            match LimiterUrl::parse(url) {
                Err(e @ LimiterUrlError::UnknownScheme { .. }) => {
                    assert!(e.to_string().contains(&format!("`{scheme}`")), "{e}");
                    assert!(e.to_string().contains("redis://"), "{e}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        assert_eq!(invalid("").0, UrlPart::Scheme);
    }

    #[test]
    fn debug_hides_redis_credentials() {
        let url = LimiterUrl::parse("redis://:hunter2@cache/").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn memory_connects_and_enforces_the_quota() {
        let limiter = from_url("memory", quota(), "requests").await.unwrap();
        assert_eq!(limiter.backend(), "memory");
        limiter.ping().await.unwrap();
        assert!(limiter.check("k", 1).await.unwrap().allowed);
        assert!(limiter.check("k", 1).await.unwrap().allowed);
        assert!(!limiter.check("k", 1).await.unwrap().allowed);
    }

    #[cfg(not(feature = "redis"))]
    #[tokio::test]
    async fn redis_without_its_feature_names_the_feature() {
        let err = from_url("redis://nowhere/", quota(), "r")
            .await
            .err()
            .unwrap();
        assert!(matches!(
            err,
            LimiterUrlError::FeatureDisabled {
                feature: "redis",
                ..
            }
        ));
        assert!(err.to_string().contains("`redis` feature"), "{err}");
    }

    #[cfg(not(feature = "dynamodb"))]
    #[tokio::test]
    async fn dynamodb_without_its_feature_names_the_feature() {
        let err = from_url("dynamodb://limits", quota(), "r")
            .await
            .err()
            .unwrap();
        assert!(matches!(
            err,
            LimiterUrlError::FeatureDisabled {
                feature: "dynamodb",
                ..
            }
        ));
    }

    #[cfg(feature = "redis")]
    #[test]
    fn the_url_prefix_goes_in_front_of_the_hosts() {
        assert_eq!(joined(None, ""), None);
        assert_eq!(joined(None, "rl"), Some("rl".into()));
        assert_eq!(joined(Some("app"), ""), Some("app".into()));
        assert_eq!(joined(Some("app"), "rl"), Some("app:rl".into()));
    }
}
