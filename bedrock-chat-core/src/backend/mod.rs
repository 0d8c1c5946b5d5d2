//! Helpers for **backend authors**: code that `bedrock-chat-store` and
//! `bedrock-chat-ratelimit` share, kept here because both depend on this crate. A host
//! that only uses the library needs nothing from this module.
//!
//! - [`BackendError`]: the two backend-facing error enums, [`StoreError`] and
//!   [`RateLimitError`], built the same way from a driver's failure, so one
//!   classification serves both.
//! - [`url`]: the pieces of a backend URL (`memory`, `redis://…`, `dynamodb://TABLE?…`)
//!   that the store's and the limiter's `from_url` parse alike.
//! - `dynamodb` (feature `dynamodb`): how DynamoDB failures, cancelled transactions and
//!   tables are handled by both DynamoDB backends.
//!
//! These are public so the backend crates can use them, not as a stable API for hosts:
//! they change with what the backends need.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod url;

use crate::error::{BoxError, RateLimitError, StoreError};

/// An error enum a backend's driver failures map into: [`StoreError`] and
/// [`RateLimitError`] both have an `Unavailable` (retryable) and a `Backend` (not)
/// variant, so one classification function can build either.
///
/// ```
/// use bedrock_chat_core::backend::BackendError;
/// use bedrock_chat_core::{RateLimitError, StoreError};
///
/// let store = StoreError::unavailable("redis", "connection refused".into());
/// assert!(store.is_retryable());
/// let limiter = RateLimitError::failed("redis", "wrong type".into());
/// assert!(!limiter.is_retryable());
/// ```
pub trait BackendError: Sized {
    /// The backend could not be reached or is overloaded: retrying may help.
    fn unavailable(backend: &'static str, source: BoxError) -> Self;

    /// The backend failed in a way retrying will not fix.
    fn failed(backend: &'static str, source: BoxError) -> Self;

    /// [`unavailable`](Self::unavailable) when `retryable`, else
    /// [`failed`](Self::failed).
    fn classified(backend: &'static str, retryable: bool, source: BoxError) -> Self {
        if retryable {
            Self::unavailable(backend, source)
        } else {
            Self::failed(backend, source)
        }
    }
}

impl BackendError for StoreError {
    fn unavailable(backend: &'static str, source: BoxError) -> Self {
        Self::Unavailable { backend, source }
    }

    fn failed(backend: &'static str, source: BoxError) -> Self {
        Self::Backend { backend, source }
    }
}

impl BackendError for RateLimitError {
    fn unavailable(backend: &'static str, source: BoxError) -> Self {
        Self::Unavailable { backend, source }
    }

    fn failed(backend: &'static str, source: BoxError) -> Self {
        Self::Backend { backend, source }
    }
}

/// `error` and its causes on one line, `: `-separated, for messages a host prints as they
/// are. A cause whose text the line already ends with (a transparent wrapper repeating its
/// inner error) is not repeated.
///
/// ```
/// use bedrock_chat_core::backend::error_chain;
/// use bedrock_chat_core::StoreError;
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// let error = StoreError::Unavailable { backend: "postgres", source: Box::new(io) };
/// assert_eq!(
///     error_chain(&error),
///     "the postgres history store is unavailable: connection refused"
/// );
/// ```
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped: inner")]
    struct Repeating(#[source] Inner);

    #[test]
    fn error_chain_joins_the_causes_and_skips_repeats() {
        assert_eq!(error_chain(&Outer(Inner)), "outer: inner");
        assert_eq!(error_chain(&Repeating(Inner)), "wrapped: inner");
        assert_eq!(error_chain(&Inner), "inner");
    }

    #[test]
    fn classified_picks_the_retryable_variant() {
        let unavailable = StoreError::classified("dynamodb", true, "busy".into());
        assert!(matches!(
            unavailable,
            StoreError::Unavailable {
                backend: "dynamodb",
                ..
            }
        ));
        let failed = RateLimitError::classified("dynamodb", false, "bad".into());
        assert!(matches!(
            failed,
            RateLimitError::Backend {
                backend: "dynamodb",
                ..
            }
        ));
    }
}
