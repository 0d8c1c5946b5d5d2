//! How Redis failures map to [`StoreError`]: one place decides what is retryable.

use ::redis::{ErrorKind, RedisError, ServerErrorKind};
use bedrock_chat_core::StoreError;

use super::BACKEND;

/// Maps a driver error: the server out of reach, the connection dropped or timed out, or
/// the server loading, read-only or asking for a retry is [`StoreError::Unavailable`];
/// anything else is [`StoreError::Backend`]. (Conflicts never come from Redis itself:
/// the scripts report them as values.)
pub(super) fn classify(error: RedisError) -> StoreError {
    let transient = error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
        || matches!(
            error.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            )
        );
    if transient {
        StoreError::Unavailable {
            backend: BACKEND,
            source: Box::new(error),
        }
    } else {
        StoreError::Backend {
            backend: BACKEND,
            source: Box::new(error),
        }
    }
}
