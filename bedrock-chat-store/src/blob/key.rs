//! The key alphabet every blob store enforces (see [`BlobStore`]): `/`-separated segments
//! of `A-Z a-z 0-9 . _ -`, none empty, `.` or `..`, at most [`MAX_KEY_BYTES`] in all. So
//! no key can name a path outside a filesystem store's root, and a key means the same on
//! every backend.
//!
//! [`BlobStore`]: bedrock_chat_core::BlobStore

use bedrock_chat_core::{InvalidInput, StoreError};

/// The longest key, in bytes: S3's limit on an object key.
pub const MAX_KEY_BYTES: usize = 1024;

/// Whether `segment` is a whole key segment: non-empty, not `.` or `..`, of the alphabet.
pub(crate) fn is_segment(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".." && in_alphabet(segment)
}

fn in_alphabet(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks a key; answers its segments.
///
/// # Errors
/// [`StoreError::InvalidInput`] on field `key` saying what is wrong.
pub(crate) fn check_key(key: &str) -> Result<std::str::Split<'_, char>, StoreError> {
    if key.is_empty() {
        return Err(invalid("key", key, "is empty"));
    }
    check_length("key", key)?;
    if let Some(bad) = key.split('/').find(|segment| !is_segment(segment)) {
        return Err(invalid("key", key, &segment_problem(bad)));
    }
    Ok(key.split('/'))
}

/// Checks a prefix: empty (every key), or whole segments each followed by `/`, then
/// optionally the start of one more segment (`attachments/abc` matches `attachments/abcd/…`).
///
/// # Errors
/// [`StoreError::InvalidInput`] on field `prefix` saying what is wrong.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    check_length("prefix", prefix)?;
    let mut segments: Vec<&str> = prefix.split('/').collect();
    let last = segments.pop().unwrap_or_default();
    if let Some(bad) = segments.iter().find(|segment| !is_segment(segment)) {
        return Err(invalid("prefix", prefix, &segment_problem(bad)));
    }
    if last == "." || last == ".." || !in_alphabet(last) {
        return Err(invalid("prefix", prefix, &segment_problem(last)));
    }
    Ok(())
}

fn check_length(field: &str, value: &str) -> Result<(), StoreError> {
    if value.len() > MAX_KEY_BYTES {
        return Err(StoreError::InvalidInput(InvalidInput::new(
            field,
            format!(
                "is {} bytes long; at most {MAX_KEY_BYTES} are allowed",
                value.len()
            ),
        )));
    }
    Ok(())
}

fn segment_problem(segment: &str) -> String {
    match segment {
        "" => "has an empty segment (a leading, trailing or doubled `/`)".to_owned(),
        "." | ".." => format!("has a `{segment}` segment"),
        _ => format!(
            "segment `{}` has a character outside A-Z a-z 0-9 . _ -",
            segment.escape_debug()
        ),
    }
}

fn invalid(field: &str, value: &str, problem: &str) -> StoreError {
    let shown: String = value.chars().take(80).collect();
    StoreError::InvalidInput(InvalidInput::new(
        field,
        format!("`{}` {problem}", shown.escape_debug()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<(), StoreError>) -> String {
        match result {
            Err(StoreError::InvalidInput(invalid)) => invalid.field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn keys_of_the_alphabet_pass() {
        for key in ["a", "attachments/c/m/0", "A-Z_a-z.0-9/..x../y.", ".hidden"] {
            assert!(check_key(key).is_ok(), "{key}");
        }
        assert_eq!(
            check_key("a/b/c").map(|s| s.count()).ok(),
            Some(3),
            "segments"
        );
    }

    #[test]
    fn keys_that_could_escape_or_differ_by_backend_are_refused() {
        for key in [
            "", "/abs", "..", "a/../b", "a/./b", "a//b", "a/", "a b", "a\\b", "a\0", "é", "C:x",
        ] {
            assert_eq!(field(check_key(key).map(drop)), "key", "{key:?}");
        }
        assert_eq!(field(check_key(&"k".repeat(1025)).map(drop)), "key");
        assert!(check_key(&"k".repeat(1024)).is_ok());
    }

    #[test]
    fn prefixes_may_be_empty_end_with_a_slash_or_stop_inside_a_segment() {
        for prefix in ["", "a/", "a/b", "attachments/abc", "a/.x"] {
            assert!(check_prefix(prefix).is_ok(), "{prefix}");
        }
        for prefix in ["/", "../", "a//", "a/..", "a/.", "a b/", "a/../b"] {
            assert_eq!(field(check_prefix(prefix)), "prefix", "{prefix:?}");
        }
    }

    #[test]
    fn the_message_says_what_is_wrong() {
        let Err(StoreError::InvalidInput(invalid)) = check_key("a/../b") else {
            panic!("refused");
        };
        assert_eq!(invalid.reason, "`a/../b` has a `..` segment");
    }
}
