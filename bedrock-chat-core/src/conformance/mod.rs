//! Conformance suites: the behaviour every [`HistoryStore`](crate::HistoryStore) and
//! [`RateLimiter`](crate::RateLimiter) backend must have, written once and run by each
//! backend's own tests (feature `conformance`).
//!
//! Each case is a `pub async fn`; the macros [`history_store_conformance!`] and
//! [`rate_limiter_conformance!`] expand them into one `#[tokio::test]` per case so that one
//! failure does not hide the rest. The calling crate needs `tokio` (with `macros` and
//! `rt-multi-thread`) as a dev-dependency.
//!
//! ```ignore
//! // tests/memory.rs of a store crate
//! use bedrock_chat_core::conformance::store::{StoreCapabilities, StoreUnderTest};
//!
//! async fn memory() -> StoreUnderTest {
//!     StoreUnderTest::new(InMemoryHistoryStore::new(), StoreCapabilities::default())
//! }
//! bedrock_chat_core::history_store_conformance!(memory);
//! ```
//!
//! Cases use fresh random user ids and keys, so backends can share one database or server
//! between cases.

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
