//! The CLI's exit codes, and the one place that maps the library's errors to them, so that
//! a script can branch on the kind of failure.

use std::process::ExitCode;

use bedrock_chat_core::{ChatError, ModelError, RateLimitError, StoreError};

use super::output::Terminal;
use crate::backends::StartupError;

/// An unexpected failure: writing the output, an operation the store does not support.
pub const FAILURE: u8 = 1;
/// Bad input: an empty question, a malformed or unknown conversation id, a bad flag or URL.
pub const BAD_INPUT: u8 = 2;
/// Over the request limit or the token budget, or the model is throttling: retry later.
pub const RATE_LIMITED: u8 = 3;
/// The model failed; nothing was stored.
pub const MODEL_ERROR: u8 = 4;
/// The store or the rate limiter is unavailable.
pub const STORE_UNAVAILABLE: u8 = 5;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The command line or the input was wrong.
    #[error("{0}")]
    Usage(String),
    /// The backends could not be set up.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// A library call failed.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// Reading the input or writing the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Self::Chat(error.into())
    }
}

impl Failure {
    /// The exit code a script sees.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => BAD_INPUT,
            Self::Startup(e) if e.is_unavailable() => STORE_UNAVAILABLE,
            Self::Startup(_) => BAD_INPUT,
            Self::Chat(e) => chat_exit_code(e),
            Self::Io(_) => FAILURE,
        }
    }

    /// Whether the output went to a reader that left (`… | head`): not worth a message.
    fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Prints the error on stderr and returns the exit code.
    pub fn report(&self, terminal: &Terminal) -> ExitCode {
        if self.is_broken_pipe() {
            return ExitCode::SUCCESS;
        }
        terminal.error(&self.to_string());
        ExitCode::from(self.exit_code())
    }
}

/// The exit code of a library error.
pub fn chat_exit_code(error: &ChatError) -> u8 {
    match error {
        ChatError::InvalidInput(_) => BAD_INPUT,
        ChatError::RateLimited(_) | ChatError::BudgetExhausted(_) => RATE_LIMITED,
        ChatError::Model(ModelError::Throttled { .. }) => RATE_LIMITED,
        ChatError::Model(_) => MODEL_ERROR,
        ChatError::Store(e) => match e {
            // An id the user does not have is a wrong argument, as in the API (404).
            StoreError::NotFound { .. } | StoreError::InvalidInput(_) => BAD_INPUT,
            StoreError::Unavailable { .. } | StoreError::Backend { .. } => STORE_UNAVAILABLE,
            _ => FAILURE,
        },
        ChatError::RateLimiter(e) => match e {
            RateLimitError::InsufficientCapacity { .. } => RATE_LIMITED,
            RateLimitError::InvalidInput(_) => BAD_INPUT,
            _ => STORE_UNAVAILABLE,
        },
        _ => FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use bedrock_chat_core::{InvalidInput, Quota, Resource};

    use super::*;

    fn code(error: impl Into<ChatError>) -> u8 {
        Failure::Chat(error.into()).exit_code()
    }

    #[test]
    fn each_error_class_has_its_documented_code() {
        assert_eq!(code(InvalidInput::new("message", "must not be empty")), 2);
        assert_eq!(code(StoreError::not_found(Resource::Conversation)), 2);
        let quota = Quota::per_minute(10).unwrap();
        let refused = quota.decision(false, 10, quota.window_at(15_000));
        assert_eq!(code(ChatError::RateLimited(refused)), 3);
        assert_eq!(code(ChatError::BudgetExhausted(refused)), 3);
        assert_eq!(code(ModelError::throttled("slow down", None)), 3);
        assert_eq!(code(ModelError::model_failure("boom")), 4);
        assert_eq!(code(ModelError::access_denied("no")), 4);
        let down = StoreError::Unavailable {
            backend: "postgres",
            source: "connection refused".into(),
        };
        assert_eq!(code(down), 5);
        let limiter_down = RateLimitError::Unavailable {
            backend: "redis",
            source: "connection refused".into(),
        };
        assert_eq!(code(limiter_down), 5);
        assert_eq!(Failure::Usage("no user".into()).exit_code(), 2);
    }

    #[test]
    fn an_unreachable_backend_at_startup_is_5_and_a_bad_setting_2() {
        let unreachable = StartupError::Unavailable {
            setting: "--store",
            url: "postgres://127.0.0.1:1/x".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(Failure::from(unreachable).exit_code(), 5);
        let malformed = StartupError::Store {
            url: "nosuch://".into(),
            reason: "unknown scheme".into(),
        };
        assert_eq!(Failure::from(malformed).exit_code(), 2);
    }
}
