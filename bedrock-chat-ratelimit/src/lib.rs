#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "dynamodb")]
mod dynamodb;
mod layered;
mod memory;
mod policy;
#[cfg(feature = "redis")]
mod redis;
pub mod url;

#[cfg(feature = "dynamodb")]
pub use dynamodb::DynamoDbRateLimiter;
pub use layered::{LayerQuota, LayerScope, LayeredRateLimiter, Layers};
pub use memory::InMemoryRateLimiter;
pub use policy::{FailurePolicy, FailurePolicyLimiter};
#[cfg(feature = "redis")]
pub use redis::{RedisLimiterConfig, RedisRateLimiter};
pub use url::{from_url, LimiterUrl, LimiterUrlError, UrlPart};
