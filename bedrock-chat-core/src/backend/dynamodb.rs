//! What both DynamoDB backends (`bedrock-chat-store`'s history store and
//! `bedrock-chat-ratelimit`'s limiter) do alike, for backend authors (see the
//! [module](super) notes): which failures are worth retrying, how a cancelled transaction
//! is read, and how a table is created, found and waited for.
//!
//! Every function that fails builds the caller's own error through [`BackendError`]
//! ([`StoreError`](crate::StoreError) or [`RateLimitError`](crate::RateLimitError)), with
//! the backend name `dynamodb`.

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::BackendError;

/// The backend name both DynamoDB backends report.
pub const BACKEND: &str = "dynamodb";

/// How long [`ensure_table`] waits for a new table to become `ACTIVE`.
pub const ACTIVE_WITHIN: Duration = Duration::from_secs(120);

/// The service's error code, when it answered.
pub fn error_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// Whether an error code means DynamoDB throttled the request.
pub fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException" | "ThrottlingException" | "RequestLimitExceeded"
    )
}

/// Whether an error code means the same request may succeed later: throttling, a failure
/// on DynamoDB's side, or an item taking part in another transaction.
pub fn is_transient_code(code: &str) -> bool {
    is_throttling_code(code)
        || matches!(
            code,
            "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException"
                | "TransactionInProgressException"
        )
}

/// Whether the same request may succeed later: no answer (dispatch failure, timeout, a
/// broken response), any 5xx, or a [transient code](is_transient_code).
pub fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::ServiceError(e) if e.raw().status().is_server_error() => true,
        SdkError::ServiceError(e) => e.err().code().is_some_and(is_transient_code),
        _ => true,
    }
}

/// The caller's error for an SDK failure: `Unavailable` when it [is
/// transient](is_transient), else `Backend`.
pub fn classify<T, E>(error: SdkError<E, HttpResponse>) -> T
where
    T: BackendError,
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    T::classified(BACKEND, is_transient(&error), Box::new(error))
}

/// The caller's `Backend` error for a request the SDK would not build: a bug in the
/// backend, reported rather than panicked on.
pub fn build_error<T: BackendError>(error: BuildError) -> T {
    T::failed(BACKEND, Box::new(error))
}

/// What the cancellation reasons of a cancelled `TransactWriteItems` say, read item by
/// item.
///
/// Exhaustive on purpose: a backend decides for each case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cancelled {
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
pub fn is_transient_reason(code: &str) -> bool {
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
pub fn cancellation<R>(error: &SdkError<TransactWriteItemsError, R>) -> Option<Cancelled> {
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
    } else if codes.iter().any(|code| is_transient_reason(code)) {
        Cancelled::Transient
    } else {
        Cancelled::Other
    })
}

/// An attribute definition of a key attribute, for `CreateTable`.
///
/// # Errors
/// The SDK's [`BuildError`] (never, with a name and a type given).
pub fn attribute(name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition, BuildError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
}

/// A key schema element, for `CreateTable` and index definitions.
///
/// # Errors
/// The SDK's [`BuildError`] (never, with a name and a kind given).
pub fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, BuildError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
}

/// Sends `request` (a `CreateTable` the backend filled in: name, keys, indexes, billing)
/// and turns TTL on for `ttl_attribute`. An existing table of that name is left as it is
/// (`ResourceInUseException`).
///
/// # Errors
/// The caller's `Unavailable` when DynamoDB cannot be reached, `Backend` when it refuses.
pub async fn create_table<T: BackendError>(
    client: &Client,
    request: CreateTableFluentBuilder,
    ttl_attribute: &str,
) -> Result<(), T> {
    let table = request.get_table_name().clone().unwrap_or_default();
    match request.send().await {
        Ok(_) => {}
        Err(e) if error_code(&e) == Some("ResourceInUseException") => return Ok(()),
        Err(e) => return Err(classify(e)),
    }
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(ttl_attribute)
        .build()
        .map_err(build_error)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

/// A client for DynamoDB at `endpoint` (a local server, say) in `region`, each from the
/// AWS defaults (environment, profile) when `None`.
pub async fn client(endpoint: Option<&str>, region: Option<&str>) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    Client::new(&loader.load().await)
}

/// The table's status, `None` when it cannot be described (missing, or DynamoDB does not
/// answer).
pub async fn table_status(client: &Client, table: &str) -> Option<TableStatus> {
    let output = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .ok()?;
    output.table()?.table_status().cloned()
}

/// Makes sure `table` exists, as a server start wants: describes it first (so a server
/// whose role may not create tables starts against one that exists); when that fails,
/// runs `create` and waits up to [`ACTIVE_WITHIN`] for the table to become `ACTIVE` (real
/// DynamoDB creates tables in the background).
///
/// # Errors
/// What `create` returns; the caller's `Unavailable` when the table does not become
/// `ACTIVE` in time.
pub async fn ensure_table<T, Fut>(
    client: &Client,
    table: &str,
    create: impl FnOnce() -> Fut,
) -> Result<(), T>
where
    T: BackendError,
    Fut: Future<Output = Result<(), T>>,
{
    if table_status(client, table).await.is_some() {
        return Ok(());
    }
    create().await?;
    let deadline = tokio::time::Instant::now() + ACTIVE_WITHIN;
    loop {
        match table_status(client, table).await {
            Some(TableStatus::Active) => return Ok(()),
            _ if tokio::time::Instant::now() >= deadline => {
                return Err(T::unavailable(
                    BACKEND,
                    format!(
                        "table {table} did not become ACTIVE within {}s",
                        ACTIVE_WITHIN.as_secs()
                    )
                    .into(),
                ))
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_sdk_dynamodb::types::error::{ResourceNotFoundException, TransactionCanceledException};
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_smithy_runtime_api::client::result::ServiceError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;
    use crate::{RateLimitError, StoreError};

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(status).expect("status"),
            SdkBody::empty(),
        )
    }

    fn cancelled_with(codes: &[&str]) -> SdkError<TransactWriteItemsError, HttpResponse> {
        let reasons = codes
            .iter()
            .map(|c| CancellationReason::builder().code(*c).build())
            .collect();
        let exception = TransactionCanceledException::builder()
            .set_cancellation_reasons(Some(reasons))
            .build();
        SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(exception),
            response(400),
        )
    }

    /// A `GetItem` answered with `status` and error `code`.
    fn answered(status: u16, code: &str) -> SdkError<GetItemError, HttpResponse> {
        let error = GetItemError::generic(ErrorMetadata::builder().code(code).build());
        SdkError::ServiceError(
            ServiceError::builder()
                .source(error)
                .raw(response(status))
                .build(),
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

    #[test]
    fn a_failure_that_is_not_a_cancellation_is_not_read_as_one() {
        let error = SdkError::service_error(
            TransactWriteItemsError::ResourceNotFoundException(
                ResourceNotFoundException::builder().build(),
            ),
            response(400),
        );
        assert_eq!(cancellation(&error), None);
    }

    #[test]
    fn throttling_server_errors_and_conflicts_are_transient() {
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "InternalServerError",
            "TransactionConflictException",
            "TransactionInProgressException",
        ] {
            assert!(is_transient(&answered(400, code)), "{code}");
        }
        assert!(is_transient(&answered(503, "Whatever")));
        assert!(!is_transient(&answered(400, "ValidationException")));
        assert!(!is_transient(&answered(400, "ResourceNotFoundException")));
        assert!(!is_throttling_code("TransactionConflictException"));
        assert_eq!(
            error_code(&answered(400, "ValidationException")),
            Some("ValidationException")
        );
    }

    #[test]
    fn classify_builds_the_callers_error() {
        let store: StoreError = classify(answered(400, "ThrottlingException"));
        assert!(matches!(
            store,
            StoreError::Unavailable {
                backend: "dynamodb",
                ..
            }
        ));
        let limiter: RateLimitError = classify(answered(400, "ValidationException"));
        assert!(matches!(
            limiter,
            RateLimitError::Backend {
                backend: "dynamodb",
                ..
            }
        ));
    }
}
