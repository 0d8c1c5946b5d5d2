//! How SDK failures map to [`StoreError`]: one place decides what is retryable.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use bedrock_chat_core::StoreError;

use super::BACKEND;

/// The service's error code, when it answered.
pub(super) fn code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// No answer (dispatch failure, timeout, a broken response), any 5xx, throttling or a
/// transaction conflict is [`StoreError::Unavailable`]; anything else
/// [`StoreError::Backend`].
pub(super) fn classify<E>(error: SdkError<E, HttpResponse>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let transient = match &error {
        SdkError::ServiceError(e) if e.raw().status().is_server_error() => true,
        SdkError::ServiceError(e) => matches!(
            e.err().code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "TransactionConflictException"
                    | "TransactionInProgressException"
            )
        ),
        _ => true,
    };
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

/// A request the SDK would not build: a bug here, reported rather than panicked on.
pub(super) fn build_error(error: BuildError) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        source: Box::new(error),
    }
}
