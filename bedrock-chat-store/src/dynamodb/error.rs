//! How SDK failures map to [`StoreError`]: the rules both DynamoDB backends share live in
//! [`bedrock_chat_core::backend::dynamodb`]; these name the store's error type, so that
//! call sites need no annotation.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use bedrock_chat_core::backend::dynamodb;
use bedrock_chat_core::StoreError;

pub(super) use bedrock_chat_core::backend::dynamodb::{
    cancellation, error_code as code, Cancelled,
};

/// No answer (dispatch failure, timeout, a broken response), any 5xx, throttling or a
/// transaction conflict is [`StoreError::Unavailable`]; anything else
/// [`StoreError::Backend`].
pub(super) fn classify<E>(error: SdkError<E, HttpResponse>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    dynamodb::classify(error)
}

/// A request the SDK would not build: a bug here, reported rather than panicked on.
pub(super) fn build_error(error: BuildError) -> StoreError {
    dynamodb::build_error(error)
}
