//! Conversions shared by the database backends: the domain keeps counts as `u64`, times as
//! [`Timestamp`](bedrock_chat_core::Timestamp) and metadata as a JSON map; databases keep signed 64-bit integers,
//! microseconds and JSON text.

use bedrock_chat_core::StoreError;

/// Stored data that does not decode: a row written by something else, or a damaged
/// database. Reported as [`StoreError::Backend`], never as a panic.
#[derive(Debug, thiserror::Error)]
#[error("stored data is malformed: {0}")]
pub(crate) struct Malformed(pub(crate) String);

/// A [`StoreError::Backend`] for stored data that does not decode.
pub(crate) fn malformed(backend: &'static str, what: impl Into<String>) -> StoreError {
    StoreError::Backend {
        backend,
        source: Box::new(Malformed(what.into())),
    }
}

/// A count as the database's signed 64-bit integer; larger ones are refused up front.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn to_i64(value: u64, field: &str) -> Result<i64, bedrock_chat_core::InvalidInput> {
    i64::try_from(value)
        .map_err(|_| bedrock_chat_core::InvalidInput::new(field, "is too large to store"))
}

/// A stored count back as `u64`.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub(crate) fn to_u64(backend: &'static str, value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| malformed(backend, format!("{what} is negative")))
}

/// Microseconds since the Unix epoch back as a [`Timestamp`](bedrock_chat_core::Timestamp).
#[cfg(any(feature = "sqlite", feature = "redis", feature = "dynamodb"))]
pub(crate) fn from_micros(
    backend: &'static str,
    micros: i64,
) -> Result<bedrock_chat_core::Timestamp, StoreError> {
    use chrono::{TimeZone, Utc};
    Utc.timestamp_micros(micros)
        .single()
        .ok_or_else(|| malformed(backend, format!("{micros} is not a valid time")))
}

/// Metadata as JSON text.
#[cfg(any(feature = "sqlite", feature = "redis", feature = "dynamodb"))]
pub(crate) fn metadata_to_json(metadata: &bedrock_chat_core::Metadata) -> String {
    // Serializing a map of JSON values cannot fail: every key is a string.
    serde_json::to_string(metadata).unwrap_or_else(|_| String::from("{}"))
}

/// JSON text back as metadata.
#[cfg(any(feature = "sqlite", feature = "redis", feature = "dynamodb"))]
pub(crate) fn metadata_from_json(
    backend: &'static str,
    json: &str,
) -> Result<bedrock_chat_core::Metadata, StoreError> {
    serde_json::from_str(json).map_err(|e| malformed(backend, format!("metadata: {e}")))
}

/// Input, output and total tokens as nullable columns.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) type UsageColumns = (Option<i64>, Option<i64>, Option<i64>);

/// Token usage as three nullable integers, the way the SQL backends store it.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn usage_to_columns(
    usage: Option<bedrock_chat_core::Usage>,
) -> Result<UsageColumns, bedrock_chat_core::InvalidInput> {
    match usage {
        None => Ok((None, None, None)),
        Some(u) => Ok((
            Some(to_i64(u.input_tokens, "usage")?),
            Some(to_i64(u.output_tokens, "usage")?),
            Some(to_i64(u.total_tokens, "usage")?),
        )),
    }
}

/// Three nullable integers back as token usage: all set or none.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn usage_from_columns(
    backend: &'static str,
    input: Option<i64>,
    output: Option<i64>,
    total: Option<i64>,
) -> Result<Option<bedrock_chat_core::Usage>, StoreError> {
    match (input, output, total) {
        (None, None, None) => Ok(None),
        (Some(i), Some(o), Some(t)) => Ok(Some(bedrock_chat_core::Usage {
            input_tokens: to_u64(backend, i, "input_tokens")?,
            output_tokens: to_u64(backend, o, "output_tokens")?,
            total_tokens: to_u64(backend, t, "total_tokens")?,
            ..Default::default()
        })),
        _ => Err(malformed(backend, "usage is partly missing")),
    }
}

#[cfg(all(test, any(feature = "sqlite", feature = "postgres")))]
mod tests {
    use bedrock_chat_core::Usage;

    use super::*;

    #[test]
    fn usage_round_trips_through_columns() {
        let usage = Some(Usage::new(3, 4));
        let (i, o, t) = usage_to_columns(usage).unwrap();
        assert_eq!(usage_from_columns("test", i, o, t).unwrap(), usage);
        assert_eq!(usage_from_columns("test", None, None, None).unwrap(), None);
        assert!(usage_from_columns("test", Some(1), None, None).is_err());
    }

    #[test]
    fn counts_beyond_i64_are_refused() {
        assert!(to_i64(u64::MAX, "usage").is_err());
        assert!(to_u64("test", -1, "seq").is_err());
    }
}
