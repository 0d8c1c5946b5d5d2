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
    /// What kind of refusal: a bad value, one too large, or a media type not taken.
    pub kind: InvalidKind,
}

/// What kind of refusal an [`InvalidInput`] is; decides its HTTP status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidKind {
    /// A bad value (400).
    #[default]
    Invalid,
    /// Over a size or count limit (413).
    TooLarge,
    /// A format or media type that is not taken, or bytes that are not what they claim
    /// to be (415).
    UnsupportedMediaType,
}

impl InvalidInput {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
            kind: InvalidKind::Invalid,
        }
    }

    /// `field` is over a size or count limit.
    pub fn too_large(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            kind: InvalidKind::TooLarge,
            ..Self::new(field, reason)
        }
    }

    /// `field`'s format or media type is not taken.
    pub fn unsupported_media_type(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            kind: InvalidKind::UnsupportedMediaType,
            ..Self::new(field, reason)
        }
    }

    /// The HTTP status: 400, 413 or 415 by [`kind`](Self::kind).
    pub fn http_status(&self) -> u16 {
        match self.kind {
            InvalidKind::Invalid => 400,
            InvalidKind::TooLarge => 413,
            InvalidKind::UnsupportedMediaType => 415,
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
    /// An attachment's bytes in a blob store.
    Attachment,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Conversation => "conversation",
            Self::Message => "message",
            Self::Attachment => "attachment",
        })
    }
}

/// A [`ChatModel`](crate::ChatModel) call failed.
///
/// Each variant says what kind of failure it was, in words (`message`) and, when a driver
/// reported it, as the driver's own error (`source`, also returned by
/// [`Error::source`](std::error::Error::source)), so that the SDK's error chain (request id,
/// HTTP response, I/O error) reaches logs. Build one with the constructor named after the
/// variant, adding the cause with [`with_source`](Self::with_source):
///
/// ```
/// use std::time::Duration;
/// use bedrock_chat_core::ModelError;
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
/// let error = ModelError::unavailable("the connection broke").with_source(io);
/// assert!(error.is_retryable());
/// assert_eq!(error.message(), "the connection broke");
/// assert!(std::error::Error::source(&error).is_some());
///
/// let throttled = ModelError::throttled("slow down", Some(Duration::from_secs(2)));
/// assert_eq!(throttled.retry_after(), Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The model refused for load: too many requests or tokens, or the model is not ready.
    #[error("the model is throttling requests: {message}")]
    #[non_exhaustive]
    Throttled {
        /// The service's message.
        message: String,
        /// How long to wait, when the service said.
        retry_after: Option<Duration>,
        /// The driver's error, when there was one.
        #[source]
        source: Option<BoxError>,
    },
    /// The service could not be reached or failed on its side (5xx, connection errors).
    #[error("the model service is unavailable: {message}")]
    #[non_exhaustive]
    Unavailable {
        /// What failed.
        message: String,
        /// The driver's error, when there was one.
        #[source]
        source: Option<BoxError>,
    },
    /// The call or the model took too long.
    #[error("the model call timed out: {message}")]
    #[non_exhaustive]
    Timeout {
        /// What timed out.
        message: String,
        /// The driver's error, when there was one.
        #[source]
        source: Option<BoxError>,
    },
    /// The service rejected the request as malformed (validation).
    #[error("the model rejected the request: {message}")]
    #[non_exhaustive]
    InvalidRequest {
        /// The service's message.
        message: String,
        /// The driver's error, when there was one.
        #[source]
        source: Option<BoxError>,
    },
    /// The input does not fit in the model's context window.
    #[error("the input is too long for the model: {message}")]
    #[non_exhaustive]
    ContextOverflow {
        /// The service's message.
        message: String,
        /// The driver's error, when there was one.
        #[source]
        source: Option<BoxError>,
    },
    /// The credentials may not use this model.
    #[error("access to the model was denied: {message}")]
    #[non_exhaustive]
    AccessDenied {
        /// The service's message.
        message: String,
        /// The driver's error, when there was one.
        #[source]
        source: Option<BoxError>,
    },
    /// No such model, or not available in this region or account.
    #[error("model not found: {message}")]
    #[non_exhaustive]
    ModelNotFound {
        /// The service's message.
        message: String,
        /// The driver's error, when there was one.
        #[source]
        source: Option<BoxError>,
    },
    /// The model itself failed while answering, including a stream that broke off.
    #[error("the model failed: {message}")]
    #[non_exhaustive]
    ModelFailure {
        /// What failed.
        message: String,
        /// The driver's error, when there was one.
        #[source]
        source: Option<BoxError>,
    },
    /// Structured output was asked for and the model's output does not fit the schema.
    #[error("the model's output does not match the schema: {message}")]
    #[non_exhaustive]
    SchemaViolation {
        /// What does not match.
        message: String,
        /// The parser's error, when there was one.
        #[source]
        source: Option<BoxError>,
    },
}

impl ModelError {
    /// [`ModelError::Throttled`], with the wait the service asked for when it said.
    pub fn throttled(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self::Throttled {
            message: message.into(),
            retry_after,
            source: None,
        }
    }

    /// [`ModelError::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// [`ModelError::Timeout`].
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::Timeout {
            message: message.into(),
            source: None,
        }
    }

    /// [`ModelError::InvalidRequest`].
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            source: None,
        }
    }

    /// [`ModelError::ContextOverflow`].
    pub fn context_overflow(message: impl Into<String>) -> Self {
        Self::ContextOverflow {
            message: message.into(),
            source: None,
        }
    }

    /// [`ModelError::AccessDenied`].
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::AccessDenied {
            message: message.into(),
            source: None,
        }
    }

    /// [`ModelError::ModelNotFound`].
    pub fn model_not_found(message: impl Into<String>) -> Self {
        Self::ModelNotFound {
            message: message.into(),
            source: None,
        }
    }

    /// [`ModelError::ModelFailure`].
    pub fn model_failure(message: impl Into<String>) -> Self {
        Self::ModelFailure {
            message: message.into(),
            source: None,
        }
    }

    /// [`ModelError::SchemaViolation`].
    pub fn schema_violation(message: impl Into<String>) -> Self {
        Self::SchemaViolation {
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source` (the driver's error, kept for logs and
    /// [`Error::source`](std::error::Error::source)). Replaces a source set before.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        *self.source_slot() = Some(source.into());
        self
    }

    fn source_slot(&mut self) -> &mut Option<BoxError> {
        match self {
            Self::Throttled { source, .. }
            | Self::Unavailable { source, .. }
            | Self::Timeout { source, .. }
            | Self::InvalidRequest { source, .. }
            | Self::ContextOverflow { source, .. }
            | Self::AccessDenied { source, .. }
            | Self::ModelNotFound { source, .. }
            | Self::ModelFailure { source, .. }
            | Self::SchemaViolation { source, .. } => source,
        }
    }

    /// What went wrong, in words (the service's message, or what failed), without the
    /// prefix naming the kind that [`Display`](fmt::Display) adds.
    pub fn message(&self) -> &str {
        match self {
            Self::Throttled { message, .. }
            | Self::Unavailable { message, .. }
            | Self::Timeout { message, .. }
            | Self::InvalidRequest { message, .. }
            | Self::ContextOverflow { message, .. }
            | Self::AccessDenied { message, .. }
            | Self::ModelNotFound { message, .. }
            | Self::ModelFailure { message, .. }
            | Self::SchemaViolation { message, .. } => message,
        }
    }

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
    /// The backend does not implement this operation (a provided trait method it did not
    /// override); retrying will not help.
    #[error("the {backend} history store does not support {operation}")]
    Unsupported {
        /// Which backend.
        backend: &'static str,
        /// The trait method (`record_usage`, `daily_usage`, ...).
        operation: &'static str,
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
            Self::InvalidInput(e) => e.http_status(),
            Self::Unavailable { .. } => 503,
            Self::Backend { .. } => 500,
            Self::Unsupported { .. } => 501,
        }
    }
}

/// A [`RateLimiter`](crate::RateLimiter) could not decide. Being over the limit is not an
/// error: it is a [`Decision`] with `allowed == false`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// The request costs more than the whole limit, so it can never be allowed: not
    /// retryable, and no retry-after. Its status is 413 (Content Too Large) rather than
    /// 429: waiting does not help, only a smaller request (fewer units or tokens) does,
    /// which is what 413 without `Retry-After` tells a client (RFC 9110, 15.5.14); 400
    /// would say the request is malformed, and it is not.
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
            Self::InsufficientCapacity { .. } => 413,
            Self::InvalidInput(e) => e.http_status(),
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
            Self::InvalidInput(e) => e.http_status(),
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
        let throttled = ModelError::throttled("slow down", Some(Duration::from_secs(2)));
        assert!(throttled.is_retryable());
        assert_eq!(ChatError::from(throttled).http_status(), 503);
        let failed = ModelError::model_failure("boom");
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
