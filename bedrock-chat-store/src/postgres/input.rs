//! What PostgreSQL cannot hold, refused before anything is written: `text` and `jsonb`
//! reject NUL (`\0`), and a half-done write must never depend on the server noticing.

use bedrock_chat_core::parts::Part;
use bedrock_chat_core::{InvalidInput, Metadata, NewConversation, NewMessage};
use serde_json::Value;

const REASON: &str = "must not contain NUL characters (PostgreSQL cannot store them)";

/// Refuses `text` when it holds a NUL.
pub(super) fn text(field: &str, text: &str) -> Result<(), InvalidInput> {
    if text.contains('\0') {
        return Err(InvalidInput::new(field, REASON));
    }
    Ok(())
}

/// Whether a JSON value has no NUL in any key or string, however deeply nested.
fn clean(value: &Value) -> bool {
    match value {
        Value::String(s) => !s.contains('\0'),
        Value::Array(items) => items.iter().all(clean),
        Value::Object(map) => map.iter().all(|(k, v)| !k.contains('\0') && clean(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
    }
}

/// Refuses parts with a NUL in any text, name, id or JSON (tool input and output). Only
/// messages with parts pay for the check.
pub(super) fn parts(field: &str, parts: &[Part]) -> Result<(), InvalidInput> {
    if parts.is_empty() {
        return Ok(());
    }
    let value = serde_json::to_value(parts).map_err(|e| InvalidInput::new(field, e.to_string()))?;
    if clean(&value) {
        Ok(())
    } else {
        Err(InvalidInput::new(field, REASON))
    }
}

/// Refuses metadata with a NUL in any key or string, however deeply nested.
pub(super) fn metadata(field: &str, metadata: &Metadata) -> Result<(), InvalidInput> {
    if metadata.iter().all(|(k, v)| !k.contains('\0') && clean(v)) {
        Ok(())
    } else {
        Err(InvalidInput::new(field, REASON))
    }
}

/// Checks every text of a new conversation.
pub(super) fn conversation(new: &NewConversation) -> Result<(), InvalidInput> {
    text("title", &new.title)?;
    if let Some(prompt) = &new.system_prompt {
        text("system_prompt", prompt)?;
    }
    metadata("metadata", &new.metadata)
}

/// Checks every text of a new message.
pub(super) fn message(new: &NewMessage) -> Result<(), InvalidInput> {
    text("content", &new.content)?;
    if let Some(model) = &new.model {
        text("model", model)?;
    }
    parts("parts", &new.parts)?;
    metadata("metadata", &new.metadata)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Metadata {
        match value {
            Value::Object(map) => map,
            _ => Metadata::new(),
        }
    }

    #[test]
    fn nul_anywhere_in_metadata_is_refused() {
        assert!(metadata("metadata", &map(json!({"a": [1, {"b": "ok"}]}))).is_ok());
        assert!(metadata("metadata", &map(json!({"a": [1, {"b": "n\u{0}"}]}))).is_err());
        assert!(metadata("metadata", &map(json!({"k\u{0}": 1}))).is_err());
        assert!(metadata("metadata", &map(json!({"a": {"k\u{0}": 1}}))).is_err());
    }

    #[test]
    fn nul_anywhere_in_parts_is_refused() {
        use bedrock_chat_core::parts::{ImageFormat, Part};
        let ok = NewMessage::user("").with_parts(vec![
            Part::image(ImageFormat::Png, vec![0, 0, 0]),
            Part::text("fine"),
        ]);
        assert!(
            message(&ok).is_ok(),
            "NUL bytes of an attachment are base64"
        );
        let tool = Part::ToolUse {
            id: "t".into(),
            name: "n".into(),
            input: json!({"k": ["a\u{0}"]}),
        };
        let bad =
            NewMessage::user("").with_parts(vec![Part::image(ImageFormat::Png, vec![1]), tool]);
        assert_eq!(message(&bad).unwrap_err().field, "parts");
        let bad = NewMessage::user("").with_parts(vec![
            Part::image(ImageFormat::Png, vec![1]),
            Part::text("x\0"),
        ]);
        assert!(message(&bad).is_err());
    }

    #[test]
    fn nul_in_text_is_refused_and_names_the_field() {
        let err = message(&NewMessage::user("a\0b")).unwrap_err();
        assert_eq!(err.field, "content");
        assert!(message(&NewMessage::user("fine \u{1} control")).is_ok());
        let err = conversation(&NewConversation::new("t").with_system_prompt("\0")).unwrap_err();
        assert_eq!(err.field, "system_prompt");
    }
}
