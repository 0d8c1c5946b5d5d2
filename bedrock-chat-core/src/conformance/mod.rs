//! Conformance suites: the behaviour every [`HistoryStore`](crate::HistoryStore),
//! [`RateLimiter`](crate::RateLimiter) and [`BlobStore`](crate::BlobStore) backend must
//! have, written once and run by each backend's own tests (feature `conformance`).
//!
//! Each case is a `pub async fn`; the macros
//! [`history_store_conformance!`](crate::history_store_conformance),
//! [`rate_limiter_conformance!`](crate::rate_limiter_conformance) and
//! [`blob_store_conformance!`](crate::blob_store_conformance) expand them into one
//! `#[tokio::test]` per case so that one failure does not hide the rest. The calling crate needs `tokio` (with `macros` and
//! `rt-multi-thread`) as a dev-dependency.
//!
//! ```no_run
//! // tests/memory.rs of a store crate
//! use bedrock_chat_core::conformance::store::{StoreCapabilities, StoreUnderTest};
//! use bedrock_chat_store::InMemoryHistoryStore;
//!
//! async fn memory() -> StoreUnderTest {
//!     StoreUnderTest::new(InMemoryHistoryStore::new(), StoreCapabilities::default())
//! }
//! bedrock_chat_core::history_store_conformance!(memory);
//! # fn main() {}
//! ```
//!
//! Cases use fresh random user ids and keys, so backends can share one database or server
//! between cases.

pub mod blob;
pub mod limiter;
pub mod store;

/// A fresh random [`UserId`](crate::UserId), unique to one case.
pub fn random_user() -> crate::UserId {
    // A UUID is never empty, short and free of control characters.
    crate::UserId::new(format!("conformance-{}", uuid::Uuid::new_v4()))
        .unwrap_or_else(|e| panic!("a UUID is a valid user id: {e}"))
}

/// A fresh random rate-limit key, unique to one case.
pub fn random_key() -> String {
    format!("conformance-{}", uuid::Uuid::new_v4())
}

/// The address of a service a backend's tests need, from the environment variable `var`
/// that `scripts/test` sets. Panics with a message naming what is missing: a backend test
/// whose service is absent fails loudly, never passes silently.
pub fn service_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{var} is not set: this test needs a real service. Run scripts/test, which starts \
             PostgreSQL, Redis and a moto DynamoDB server and sets it"
        ),
    }
}

/// A key prefix unique to this test run and to one call (`<run>:<uuid>`), under
/// `BEDROCK_CHAT_TEST_PREFIX` when `scripts/test` set it, so runs and cases never collide
/// and a run's keys can be deleted together.
pub fn unique_prefix() -> String {
    let run = std::env::var("BEDROCK_CHAT_TEST_PREFIX").unwrap_or_else(|_| "bctest".into());
    format!("{run}:{}", uuid::Uuid::new_v4().simple())
}
