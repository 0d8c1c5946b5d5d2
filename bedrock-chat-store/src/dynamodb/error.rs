//! How SDK failures map to [`StoreError`]: one place decides what is retryable.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
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

/// What the cancellation reasons of a cancelled transaction say, read item by item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Cancelled {
    /// The conditions of these items (positions in the transaction) failed: a real answer
    /// about what is stored, not worth retrying as it is.
    Conditions(Vec<usize>),
    /// No condition failed, but an item conflicted with another transaction or was
    /// throttled: the same transaction may commit if tried again.
    Transient,
    /// Anything else (a validation error, an item collection too large): a failure.
    Other,
}

/// Whether a cancellation reason code means "try again later".
fn transient_reason(code: &str) -> bool {
    matches!(
        code,
        "TransactionConflict"
            | "ThrottlingError"
            | "ProvisionedThroughputExceeded"
            | "RequestLimitExceeded"
    )
}

/// Reads a `TransactWriteItems` failure: `None` when it is not a cancellation.
///
/// A failed condition decides even beside a conflict on another item: the transaction
/// cannot commit as it is. Codes are compared as DynamoDB documents them
/// (`ConditionalCheckFailed`, `TransactionConflict`, `ThrottlingError`,
/// `ProvisionedThroughputExceeded`, `None` for an item that was not at fault, ...).
pub(super) fn cancellation(
    error: &SdkError<TransactWriteItemsError, HttpResponse>,
) -> Option<Cancelled> {
    let TransactWriteItemsError::TransactionCanceledException(cancelled) =
        error.as_service_error()?
    else {
        return None;
    };
    let codes: Vec<&str> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|reason| reason.code().unwrap_or("None"))
        .collect();
    let failed: Vec<usize> = codes
        .iter()
        .enumerate()
        .filter(|(_, code)| **code == "ConditionalCheckFailed")
        .map(|(i, _)| i)
        .collect();
    Some(if !failed.is_empty() {
        Cancelled::Conditions(failed)
    } else if codes.iter().any(|code| transient_reason(code)) {
        Cancelled::Transient
    } else {
        Cancelled::Other
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn cancelled_with(codes: &[&str]) -> SdkError<TransactWriteItemsError, HttpResponse> {
        let reasons = codes
            .iter()
            .map(|c| CancellationReason::builder().code(*c).build())
            .collect();
        let exception = TransactionCanceledException::builder()
            .set_cancellation_reasons(Some(reasons))
            .build();
        let raw = HttpResponse::new(StatusCode::try_from(400).expect("400"), SdkBody::empty());
        SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(exception),
            raw,
        )
    }

    #[test]
    fn cancellation_reasons_are_read_item_by_item() {
        assert_eq!(
            cancellation(&cancelled_with(&["None", "ConditionalCheckFailed", "None"])),
            Some(Cancelled::Conditions(vec![1]))
        );
        assert_eq!(
            cancellation(&cancelled_with(&["TransactionConflict", "None"])),
            Some(Cancelled::Transient)
        );
        assert_eq!(
            cancellation(&cancelled_with(&["None", "ThrottlingError"])),
            Some(Cancelled::Transient)
        );
        assert_eq!(
            cancellation(&cancelled_with(&["ProvisionedThroughputExceeded"])),
            Some(Cancelled::Transient)
        );
        // A failed condition decides, whatever else happened.
        assert_eq!(
            cancellation(&cancelled_with(&[
                "TransactionConflict",
                "ConditionalCheckFailed"
            ])),
            Some(Cancelled::Conditions(vec![1]))
        );
        assert_eq!(
            cancellation(&cancelled_with(&["ValidationError", "None"])),
            Some(Cancelled::Other)
        );
        assert_eq!(cancellation(&cancelled_with(&[])), Some(Cancelled::Other));
    }
}
