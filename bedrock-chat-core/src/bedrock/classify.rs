//! Bedrock's failures, classified into [`ModelError`]: one table from error code to kind,
//! used for Converse, ConverseStream and exceptions inside a stream alike, and the SDK retry
//! classifier that retries exactly what that table calls retryable.

use std::error::Error as StdError;
use std::time::Duration;

use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::operation::converse_stream::ConverseStreamError;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_types::event_stream::RawMessage;

use crate::error::ModelError;

/// What kind of failure an error code names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Throttled,
    Unavailable,
    Timeout,
    Invalid,
    AccessDenied,
    NotFound,
    ModelFailure,
}

/// The kind an AWS error code names, compared without case because exceptions inside a
/// stream are named in camel case (`throttlingException`) and HTTP errors in Pascal case.
fn kind_of_code(code: &str) -> Option<Kind> {
    const TABLE: &[(&str, Kind)] = &[
        ("ThrottlingException", Kind::Throttled),
        ("ModelNotReadyException", Kind::Throttled),
        ("ServiceQuotaExceededException", Kind::Throttled),
        ("TooManyRequestsException", Kind::Throttled),
        ("ServiceUnavailableException", Kind::Unavailable),
        ("InternalServerException", Kind::Unavailable),
        ("InternalFailure", Kind::Unavailable),
        ("ModelTimeoutException", Kind::Timeout),
        ("ValidationException", Kind::Invalid),
        ("AccessDeniedException", Kind::AccessDenied),
        ("UnrecognizedClientException", Kind::AccessDenied),
        ("ExpiredTokenException", Kind::AccessDenied),
        ("InvalidSignatureException", Kind::AccessDenied),
        ("ResourceNotFoundException", Kind::NotFound),
        ("ModelErrorException", Kind::ModelFailure),
        ("ModelStreamErrorException", Kind::ModelFailure),
    ];
    TABLE
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(code))
        .map(|(_, kind)| *kind)
}

/// The kind an HTTP status means, for errors whose code is missing or unknown.
fn kind_of_status(status: u16) -> Kind {
    match status {
        429 => Kind::Throttled,
        408 => Kind::Timeout,
        401 | 403 => Kind::AccessDenied,
        404 => Kind::NotFound,
        400..=499 => Kind::Invalid,
        500..=599 => Kind::Unavailable,
        _ => Kind::ModelFailure,
    }
}

/// Whether a validation message says the input does not fit the model's context window.
/// Bedrock has no error code for it; these are the phrasings its models use.
fn is_context_overflow(message: &str) -> bool {
    const PHRASES: &[&str] = &[
        "input is too long",
        "too many input tokens",
        "prompt is too long",
        "context length",
        "context window",
        "maximum context",
        "input length and `max_tokens` exceed",
        "exceeds the maximum number of input tokens",
    ];
    let lower = message.to_ascii_lowercase();
    PHRASES.iter().any(|p| lower.contains(p))
}

fn error_of(kind: Kind, message: String, retry_after: Option<Duration>) -> ModelError {
    match kind {
        Kind::Throttled => ModelError::throttled(message, retry_after),
        Kind::Unavailable => ModelError::unavailable(message),
        Kind::Timeout => ModelError::timeout(message),
        Kind::Invalid if is_context_overflow(&message) => ModelError::context_overflow(message),
        Kind::Invalid => ModelError::invalid_request(message),
        Kind::AccessDenied => ModelError::access_denied(message),
        Kind::NotFound => ModelError::model_not_found(message),
        Kind::ModelFailure => ModelError::model_failure(message),
    }
}

/// An error code, as the SDK error names it. Exceptions inside a stream carry their type in
/// a frame header that the SDK turns into the variant but not into `code()`, so their
/// variants are named here.
pub(crate) trait ErrorCode {
    /// The AWS error code, when known.
    fn error_code(&self) -> Option<&str>;
}

impl ErrorCode for ConverseError {
    fn error_code(&self) -> Option<&str> {
        self.code()
    }
}

impl ErrorCode for ConverseStreamError {
    fn error_code(&self) -> Option<&str> {
        self.code()
    }
}

impl ErrorCode for aws_sdk_bedrockruntime::operation::count_tokens::CountTokensError {
    fn error_code(&self) -> Option<&str> {
        self.code()
    }
}

impl ErrorCode for ConverseStreamOutputError {
    fn error_code(&self) -> Option<&str> {
        match self {
            Self::InternalServerException(_) => Some("InternalServerException"),
            Self::ModelStreamErrorException(_) => Some("ModelStreamErrorException"),
            Self::ValidationException(_) => Some("ValidationException"),
            Self::ThrottlingException(_) => Some("ThrottlingException"),
            Self::ServiceUnavailableException(_) => Some("ServiceUnavailableException"),
            other => other.code(),
        }
    }
}

/// The error a service answered with: by code, else by HTTP status.
fn service_error<E>(err: &E, status: Option<u16>, retry_after: Option<Duration>) -> ModelError
where
    E: ErrorCode + ProvideErrorMetadata + StdError,
{
    let code = err.error_code();
    let kind = code
        .and_then(kind_of_code)
        .or_else(|| status.map(kind_of_status))
        .unwrap_or(Kind::ModelFailure);
    let message = match (err.message(), code) {
        (Some(m), Some(c)) => format!("{c}: {m}"),
        (Some(m), None) => m.to_owned(),
        (None, Some(c)) => c.to_owned(),
        (None, None) => DisplayErrorContext(err).to_string(),
    };
    error_of(kind, message, retry_after)
}

/// How long the service asked the caller to wait: `retry-after` in seconds, or
/// `x-amz-retry-after` in milliseconds.
fn retry_after(response: &HttpResponse) -> Option<Duration> {
    let headers = response.headers();
    if let Some(secs) = headers
        .get("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_secs(secs));
    }
    headers
        .get("x-amz-retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// A failed Converse or ConverseStream call (the request, not the stream after it). The
/// SDK error becomes the source, so its chain (request id, HTTP response, I/O error) is kept.
pub(crate) fn classify_call<E>(err: SdkError<E, HttpResponse>) -> ModelError
where
    E: ErrorCode + ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let error = match &err {
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            let retry_after = retry_after(raw);
            service_error(service.err(), Some(raw.status().as_u16()), retry_after)
        }
        SdkError::TimeoutError(_) => ModelError::timeout(DisplayErrorContext(&err).to_string()),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            ModelError::timeout(DisplayErrorContext(&err).to_string())
        }
        SdkError::DispatchFailure(failure) if failure.is_user() => {
            ModelError::invalid_request(DisplayErrorContext(&err).to_string())
        }
        SdkError::ConstructionFailure(_) => {
            ModelError::invalid_request(DisplayErrorContext(&err).to_string())
        }
        // Connection failures and responses that were cut off or garbled: the service or the
        // path to it is at fault, and another attempt may get through.
        _ => ModelError::unavailable(DisplayErrorContext(&err).to_string()),
    };
    error.with_source(err)
}

/// A failure while reading a stream that had started, with the SDK error as its source.
pub(crate) fn classify_stream(err: SdkError<ConverseStreamOutputError, RawMessage>) -> ModelError {
    let error = match &err {
        SdkError::ServiceError(service) => service_error(service.err(), None, None),
        SdkError::TimeoutError(_) => ModelError::timeout(DisplayErrorContext(&err).to_string()),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            ModelError::timeout(DisplayErrorContext(&err).to_string())
        }
        SdkError::DispatchFailure(_) => {
            ModelError::unavailable(DisplayErrorContext(&err).to_string())
        }
        // A frame that does not decode: the stream broke off.
        _ => ModelError::model_failure(format!(
            "the reply stream broke off: {}",
            DisplayErrorContext(&err)
        )),
    };
    error.with_source(err)
}

/// Makes the SDK retry the codes our table calls retryable that its own classifiers do not
/// (`ServiceQuotaExceededException`, `ModelTimeoutException`), so that "retryable" means the
/// same thing to the SDK's retry loop and to callers reading [`ModelError::is_retryable`].
#[derive(Debug, Default)]
pub(crate) struct BedrockRetryClassifier;

impl ClassifyRetry for BedrockRetryClassifier {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(operation_error) = error.as_operation_error() else {
            return RetryAction::NoActionIndicated;
        };
        let code = operation_error
            .downcast_ref::<ConverseError>()
            .and_then(ErrorCode::error_code)
            .or_else(|| {
                operation_error
                    .downcast_ref::<ConverseStreamError>()
                    .and_then(ErrorCode::error_code)
            });
        match code.and_then(kind_of_code) {
            Some(Kind::Throttled) => RetryAction::throttling_error(),
            Some(Kind::Unavailable | Kind::Timeout) => RetryAction::transient_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "bedrock-chat error codes"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds_in_either_case() {
        assert_eq!(kind_of_code("ThrottlingException"), Some(Kind::Throttled));
        assert_eq!(kind_of_code("throttlingException"), Some(Kind::Throttled));
        assert_eq!(
            kind_of_code("modelStreamErrorException"),
            Some(Kind::ModelFailure)
        );
        assert_eq!(kind_of_code("SomethingNew"), None);
    }

    #[test]
    fn unknown_codes_fall_back_to_the_status() {
        assert_eq!(kind_of_status(503), Kind::Unavailable);
        assert_eq!(kind_of_status(429), Kind::Throttled);
        assert_eq!(kind_of_status(400), Kind::Invalid);
    }

    #[test]
    fn long_input_validation_messages_are_context_overflow() {
        let e = error_of(
            Kind::Invalid,
            "ValidationException: Input is too long for requested model.".into(),
            None,
        );
        assert!(matches!(e, ModelError::ContextOverflow { .. }));
        let e = error_of(
            Kind::Invalid,
            "The maximum tokens you requested exceeds the model limit of 4096.".into(),
            None,
        );
        assert!(matches!(e, ModelError::InvalidRequest { .. }));
    }
}
