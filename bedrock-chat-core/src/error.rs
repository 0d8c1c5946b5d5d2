//! Errors, one enum per concern. Each says whether retrying can help
//! ([`is_retryable`](ChatError::is_retryable)) and which HTTP status it maps to
//! ([`http_status`](ChatError::http_status)).

use std::fmt;
use std::time::Duration;

use crate::limiter::Decision;

/// The source of a backend failure: the driver's own error, kept for logs and `source()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A value that was refused, and why. Names the field so an API can say which one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidInput {
    /// The field that was wrong, as the API names it (`message`, `chat_id`, `cursor`, ...).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidInput {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// What kind of record was not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resource {
    /// A conversation.
    Conversation,
    /// A message.
    Message,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Conversation => "conversation",
            Self::Message => "message",
        })
    }
}

/// A [`ChatModel`](crate::ChatModel) call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The model refused for load: too many requests or tokens, or the model is not ready.
    #[error("the model is throttling requests: {message}")]
    Throttled {
        /// The service's message.
        message: String,
        /// How long to wait, when the service said.
        retry_after: Option<Duration>,
    },
    /// The service could not be reached or failed on its side (5xx, connection errors).
    #[error("the model service is unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
    },
    /// The call or the model took too long.
    #[error("the model call timed out: {message}")]
    Timeout {
        /// What timed out.
        message: String,
    },
    /// The service rejected the request as malformed (validation).
    #[error("the model rejected the request: {message}")]
    InvalidRequest {
        /// The service's message.
        message: String,
    },
    /// The input does not fit in the model's context window.
    #[error("the input is too long for the model: {message}")]
    ContextOverflow {
        /// The service's message.
        message: String,
    },
    /// The credentials may not use this model.
    #[error("access to the model was denied: {message}")]
    AccessDenied {
        /// The service's message.
        message: String,
    },
    /// No such model, or not available in this region or account.
    #[error("model not found: {message}")]
    ModelNotFound {
        /// The service's message.
        message: String,
    },
    /// The model itself failed while answering, including a stream that broke off.
    #[error("the model failed: {message}")]
    ModelFailure {
        /// What failed.
        message: String,
    },
    /// Structured output was asked for and the model's output does not fit the schema.
    #[error("the model's output does not match the schema: {message}")]
    SchemaViolation {
        /// What does not match.
        message: String,
    },
}

impl ModelError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::Unavailable { .. } | Self::Timeout { .. }
        )
    }

    /// The HTTP status an API should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Throttled { .. } | Self::Unavailable { .. } => 503,
            Self::Timeout { .. } => 504,
            Self::InvalidRequest { .. } | Self::ContextOverflow { .. } => 400,
            Self::AccessDenied { .. }
            | Self::ModelNotFound { .. }
            | Self::ModelFailure { .. }
            | Self::SchemaViolation { .. } => 502,
        }
    }

    /// How long to wait before retrying, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A [`HistoryStore`](crate::HistoryStore) operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such record for this user. Another user's record is reported the same way.
    #[error("{resource} not found")]
    NotFound {
        /// What was looked for.
        resource: Resource,
    },
    /// The write contradicts what is stored (an id already used for something else).
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicts.
        message: String,
    },
    /// The request was refused before anything was written.
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),
    /// The backend could not be reached or is overloaded; retrying may help.
    #[error("the {backend} history store is unavailable")]
    Unavailable {
        /// Which backend (`postgres`, `redis`, ...).
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The backend failed in an unexpected way.
    #[error("the {backend} history store failed")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// Shorthand for [`StoreError::NotFound`].
    pub fn not_found(resource: Resource) -> Self {
        Self::NotFound { resource }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// The HTTP status an API should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::NotFound { .. } => 404,
            Self::Conflict { .. } => 409,
            Self::InvalidInput(_) => 400,
            Self::Unavailable { .. } => 503,
            Self::Backend { .. } => 500,
        }
    }
}

/// A [`RateLimiter`](crate::RateLimiter) could not decide. Being over the limit is not an
/// error: it is a [`Decision`] with `allowed == false`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// The request costs more than the whole limit, so it can never be allowed.
    #[error("a cost of {cost} exceeds the limit of {limit}")]
    InsufficientCapacity {
        /// What was asked for.
        cost: u64,
        /// The limit of one window.
        limit: u64,
    },
    /// The key or the quota was refused.
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),
    /// The backend could not be reached; retrying may help.
    #[error("the {backend} rate limiter is unavailable")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The backend failed in an unexpected way.
    #[error("the {backend} rate limiter failed")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl RateLimitError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// The HTTP status an API should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InsufficientCapacity { .. } => 429,
            Self::InvalidInput(_) => 400,
            Self::Unavailable { .. } => 503,
            Self::Backend { .. } => 500,
        }
    }
}

/// A [`ChatService`](crate::ChatService) call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// The request was refused before anything happened.
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),
    /// The caller is over its request limit.
    #[error("rate limit exceeded; retry after {}s", retry_secs(.0))]
    RateLimited(Decision),
    /// The caller's token budget for the period is spent.
    #[error("token budget exhausted; retry after {}s", retry_secs(.0))]
    BudgetExhausted(Decision),
    /// The model failed; nothing was stored.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The history store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The rate limiter failed.
    #[error(transparent)]
    RateLimiter(#[from] RateLimitError),
}

fn retry_secs(decision: &Decision) -> u64 {
    decision.retry_after_secs().unwrap_or(0)
}

impl ChatError {
    /// Whether the same call may succeed later (after [`retry_after`](Self::retry_after)
    /// when that is known).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InvalidInput(_) => false,
            Self::RateLimited(_) | Self::BudgetExhausted(_) => true,
            Self::Model(e) => e.is_retryable(),
            Self::Store(e) => e.is_retryable(),
            Self::RateLimiter(e) => e.is_retryable(),
        }
    }

    /// The HTTP status an API should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidInput(_) => 400,
            Self::RateLimited(_) | Self::BudgetExhausted(_) => 429,
            Self::Model(e) => e.http_status(),
            Self::Store(e) => e.http_status(),
            Self::RateLimiter(e) => e.http_status(),
        }
    }

    /// How long to wait before retrying, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited(d) | Self::BudgetExhausted(d) => d.retry_after,
            Self::Model(e) => e.retry_after(),
            _ => None,
        }
    }

    /// Whether the error means "no such conversation or message for this user".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Store(StoreError::NotFound { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_spec_table() {
        let throttled = ModelError::Throttled {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert!(throttled.is_retryable());
        assert_eq!(ChatError::from(throttled).http_status(), 503);
        let failed = ModelError::ModelFailure {
            message: "boom".into(),
        };
        assert!(!failed.is_retryable());
        assert_eq!(ChatError::from(failed).http_status(), 502);
        let missing = ChatError::from(StoreError::not_found(Resource::Conversation));
        assert_eq!(missing.http_status(), 404);
        assert!(missing.is_not_found());
        let bad = ChatError::from(InvalidInput::new("message", "must not be empty"));
        assert_eq!(bad.http_status(), 400);
        assert_eq!(bad.to_string(), "invalid message: must not be empty");
    }
}
