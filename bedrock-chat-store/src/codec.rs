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

/// Input, output and total tokens as nullable columns, then the prompt-cache read and
/// write tokens (NULL when 0, so that a message without them costs nothing more).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) type UsageColumns = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Token usage as five nullable integers, the way the SQL backends store it.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn usage_to_columns(
    usage: Option<bedrock_chat_core::Usage>,
) -> Result<UsageColumns, bedrock_chat_core::InvalidInput> {
    let nonzero = |n: u64| -> Result<Option<i64>, bedrock_chat_core::InvalidInput> {
        (n != 0).then(|| to_i64(n, "usage")).transpose()
    };
    match usage {
        None => Ok((None, None, None, None, None)),
        Some(u) => Ok((
            Some(to_i64(u.input_tokens, "usage")?),
            Some(to_i64(u.output_tokens, "usage")?),
            Some(to_i64(u.total_tokens, "usage")?),
            nonzero(u.cache_read_tokens)?,
            nonzero(u.cache_write_tokens)?,
        )),
    }
}

/// Five nullable integers back as token usage: input, output and total all set or none;
/// a cache count that is NULL (a row from before they were kept, or none used) is 0.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn usage_from_columns(
    backend: &'static str,
    (input, output, total, cache_read, cache_write): UsageColumns,
) -> Result<Option<bedrock_chat_core::Usage>, StoreError> {
    let cache = |n: Option<i64>, what: &str| n.map_or(Ok(0), |n| to_u64(backend, n, what));
    match (input, output, total) {
        (None, None, None) if cache_read.is_none() && cache_write.is_none() => Ok(None),
        (Some(i), Some(o), Some(t)) => Ok(Some(bedrock_chat_core::Usage {
            input_tokens: to_u64(backend, i, "input_tokens")?,
            output_tokens: to_u64(backend, o, "output_tokens")?,
            total_tokens: to_u64(backend, t, "total_tokens")?,
            cache_read_tokens: cache(cache_read, "cache_read_tokens")?,
            cache_write_tokens: cache(cache_write, "cache_write_tokens")?,
        })),
        _ => Err(malformed(backend, "usage is partly missing")),
    }
}

/// A message's parts as JSON text, or `None` for a plain-text message (no parts): a
/// plain message stores nothing more than it did before parts existed.
pub(crate) fn parts_to_json(
    parts: &[bedrock_chat_core::parts::Part],
) -> Result<Option<String>, bedrock_chat_core::InvalidInput> {
    if parts.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(parts)
        .map(Some)
        .map_err(|e| bedrock_chat_core::InvalidInput::new("parts", e.to_string()))
}

/// Stored parts back: `None` (nothing stored: a plain-text message, or one written before
/// parts were kept) is no parts.
pub(crate) fn parts_from_json(
    backend: &'static str,
    json: Option<&str>,
) -> Result<Vec<bedrock_chat_core::parts::Part>, StoreError> {
    match json {
        None => Ok(Vec::new()),
        Some(json) => {
            serde_json::from_str(json).map_err(|e| malformed(backend, format!("parts: {e}")))
        }
    }
}

/// A message's parts after an edit that sets its text to `content`: the text parts give
/// way to it and the attachments stay ([`replace_text`](bedrock_chat_core::parts::replace_text));
/// a plain-text message stays plain.
#[cfg(any(feature = "sqlite", feature = "redis", feature = "dynamodb"))]
pub(crate) fn edited_parts(
    mut parts: Vec<bedrock_chat_core::parts::Part>,
    content: &str,
) -> Vec<bedrock_chat_core::parts::Part> {
    if !parts.is_empty() {
        bedrock_chat_core::parts::replace_text(&mut parts, content);
    }
    parts
}

#[cfg(all(test, any(feature = "sqlite", feature = "postgres")))]
mod tests {
    use bedrock_chat_core::Usage;

    use super::*;

    #[test]
    fn usage_round_trips_through_columns() {
        for usage in [
            Some(Usage::new(3, 4)),
            Some(Usage::new(3, 4).with_cache(50, 7)),
        ] {
            let columns = usage_to_columns(usage).unwrap();
            assert_eq!(usage_from_columns("test", columns).unwrap(), usage);
        }
        let (.., read, write) = usage_to_columns(Some(Usage::new(3, 4))).unwrap();
        assert_eq!((read, write), (None, None), "no cache figures store NULL");
        let none = (None, None, None, None, None);
        assert_eq!(usage_from_columns("test", none).unwrap(), None);
        assert!(usage_from_columns("test", (Some(1), None, None, None, None)).is_err());
        assert!(usage_from_columns("test", (None, None, None, Some(1), None)).is_err());
    }

    #[test]
    fn parts_round_trip_and_plain_messages_store_nothing() {
        use bedrock_chat_core::parts::{ImageFormat, Part};
        assert_eq!(parts_to_json(&[]).unwrap(), None);
        assert!(parts_from_json("test", None).unwrap().is_empty());
        let parts = vec![
            Part::image(ImageFormat::Png, vec![0, 255]),
            Part::text("hi"),
        ];
        let json = parts_to_json(&parts).unwrap();
        assert_eq!(parts_from_json("test", json.as_deref()).unwrap(), parts);
        assert!(parts_from_json("test", Some("[{\"type\": \"nope\"}]")).is_err());
    }

    #[test]
    fn counts_beyond_i64_are_refused() {
        assert!(to_i64(u64::MAX, "usage").is_err());
        assert!(to_u64("test", -1, "seq").is_err());
    }
}
