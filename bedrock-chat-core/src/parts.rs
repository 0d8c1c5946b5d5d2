//! Messages made of parts: text, images, documents, tool calls and results, reasoning.
//!
//! A plain-text message has no parts: its [`content`](crate::Message::content) is the whole
//! message, as cheap to store and send as ever. A message with anything else carries its
//! content as an ordered list of [`Part`]s (text parts included), and `content` is then the
//! text of its text parts, for titles, listings and search.
//!
//! Attachment bytes are [`Binary`]: the bytes themselves, or a [`BlobRef`] to bytes that the
//! service moved into a [`BlobStore`](crate::blob::BlobStore) because they were large.
//!
//! ```
//! use bedrock_chat_core::parts::{DocumentFormat, ImageFormat, Part};
//! let photo = Part::image(ImageFormat::Png, b"\x89PNG\r\n\x1a\n...".to_vec());
//! let notes = Part::document(DocumentFormat::Md, "notes", b"# Notes".to_vec());
//! assert_eq!(photo.kind(), "image");
//! assert_eq!(notes.kind(), "document");
//! assert_eq!(Part::text("Hi").as_text(), Some("Hi"));
//! ```

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::citation::Citation;

/// One piece of a message's content.
///
/// Serialised with a `type` tag: `{"type": "text", "text": "..."}`,
/// `{"type": "image", "format": "png", "source": {"bytes": "<base64>"}}`, ...
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Part {
    /// Text.
    Text {
        /// The text, byte for byte.
        text: String,
        /// For an answer that cites documents: the spans of `text` that rest on them
        /// (see [`crate::citation`]). Empty otherwise, and then left out of the JSON.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        citations: Vec<Citation>,
    },
    /// An image (png, jpeg, gif, webp).
    Image {
        /// Its format.
        format: ImageFormat,
        /// Its bytes.
        source: Binary,
    },
    /// A document (pdf, csv, doc, docx, xls, xlsx, html, txt, md).
    Document {
        /// Its format.
        format: DocumentFormat,
        /// Its name, as the model sees it.
        name: String,
        /// Its bytes.
        source: Binary,
    },
    /// The model asking for a tool call.
    ToolUse {
        /// The call's id, which its result names.
        id: String,
        /// The tool.
        name: String,
        /// The input, a JSON object matching the tool's schema.
        input: serde_json::Value,
    },
    /// A tool's answer to a call.
    ToolResult {
        /// The [`ToolUse`](Part::ToolUse) id it answers.
        tool_use_id: String,
        /// The output: a JSON string is sent as text, anything else as JSON.
        output: serde_json::Value,
        /// `true` when the tool failed and `output` says why.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    /// The model's reasoning before its answer.
    Reasoning {
        /// What the model reasoned.
        text: String,
        /// The provider's signature, sent back with the reasoning on the next turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Reasoning the provider encrypted (kept and sent back, never shown).
    RedactedReasoning {
        /// The encrypted reasoning.
        data: Binary,
    },
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            text: text.into(),
            citations: Vec::new(),
        }
    }

    /// A text part whose spans rest on documents.
    pub fn cited_text(text: impl Into<String>, citations: Vec<Citation>) -> Self {
        Self::Text {
            text: text.into(),
            citations,
        }
    }

    /// An image part holding `bytes`.
    pub fn image(format: ImageFormat, bytes: impl Into<Bytes>) -> Self {
        Self::Image {
            format,
            source: Binary::Bytes(bytes.into()),
        }
    }

    /// A document part named `name` holding `bytes`.
    pub fn document(
        format: DocumentFormat,
        name: impl Into<String>,
        bytes: impl Into<Bytes>,
    ) -> Self {
        Self::Document {
            format,
            name: name.into(),
            source: Binary::Bytes(bytes.into()),
        }
    }

    /// The part's `type` tag: `text`, `image`, `document`, `tool_use`, `tool_result`,
    /// `reasoning` or `redacted_reasoning`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Image { .. } => "image",
            Self::Document { .. } => "document",
            Self::ToolUse { .. } => "tool_use",
            Self::ToolResult { .. } => "tool_result",
            Self::Reasoning { .. } => "reasoning",
            Self::RedactedReasoning { .. } => "redacted_reasoning",
        }
    }

    /// The text of a text part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text { text, .. } => Some(text),
            _ => None,
        }
    }

    /// `true` for a text part without citations: as a message's only part, the message is
    /// plain text.
    pub fn is_plain_text(&self) -> bool {
        matches!(self, Self::Text { citations, .. } if citations.is_empty())
    }

    /// The bytes of an image, document or redacted reasoning part.
    pub fn binary(&self) -> Option<&Binary> {
        match self {
            Self::Image { source, .. } | Self::Document { source, .. } => Some(source),
            Self::RedactedReasoning { data } => Some(data),
            _ => None,
        }
    }

    /// The same, mutably (to move bytes into a blob store and back).
    pub fn binary_mut(&mut self) -> Option<&mut Binary> {
        match self {
            Self::Image { source, .. } | Self::Document { source, .. } => Some(source),
            Self::RedactedReasoning { data } => Some(data),
            _ => None,
        }
    }

    /// `true` for an image or a document.
    pub fn is_attachment(&self) -> bool {
        matches!(self, Self::Image { .. } | Self::Document { .. })
    }
}

/// The text of `parts`' text parts, joined by blank lines: a message's
/// [`content`](crate::Message::content) when it has parts.
///
/// ```
/// use bedrock_chat_core::parts::{text_of, ImageFormat, Part};
/// let parts = [Part::image(ImageFormat::Png, vec![1]), Part::text("a"), Part::text("b")];
/// assert_eq!(text_of(&parts), "a\n\nb");
/// ```
pub fn text_of(parts: &[Part]) -> String {
    let mut texts = parts.iter().filter_map(Part::as_text);
    let Some(first) = texts.next() else {
        return String::new();
    };
    let mut out = first.to_owned();
    for text in texts {
        out.push_str("\n\n");
        out.push_str(text);
    }
    out
}

/// An attachment in a line, for transcripts and terminals: `image (png, 1234 bytes)`,
/// `document “notes” (md, 56 bytes)`; `None` for other parts.
///
/// ```
/// use bedrock_chat_core::parts::{describe, DocumentFormat, Part};
/// let notes = Part::document(DocumentFormat::Md, "notes", b"# hi".to_vec());
/// assert_eq!(describe(&notes).as_deref(), Some("document “notes” (md, 4 bytes)"));
/// assert_eq!(describe(&Part::text("hi")), None);
/// ```
pub fn describe(part: &Part) -> Option<String> {
    let size = part.binary().map_or(0, Binary::len);
    match part {
        Part::Image { format, .. } => Some(format!("image ({format}, {size} bytes)")),
        Part::Document { format, name, .. } => Some(format!(
            "document “{}” ({format}, {size} bytes)",
            name.replace(['\r', '\n'], " ")
        )),
        _ => None,
    }
}

/// `parts` with its text replaced by `text`, for an edit of a message that has parts: the
/// first text part takes the new text (or it is added at the end when there is none) and
/// the other text parts go; images, documents and the rest stay where they were.
///
/// ```
/// use bedrock_chat_core::parts::{replace_text, ImageFormat, Part};
/// let mut parts = vec![Part::image(ImageFormat::Png, vec![1]), Part::text("a"), Part::text("b")];
/// replace_text(&mut parts, "new");
/// assert_eq!(parts.len(), 2);
/// assert_eq!(parts[1].as_text(), Some("new"));
/// ```
pub fn replace_text(parts: &mut Vec<Part>, text: &str) {
    let mut placed = false;
    parts.retain_mut(|part| match part {
        Part::Text {
            text: old,
            citations,
        } if !placed => {
            placed = true;
            text.clone_into(old);
            // The new words are not the ones the citations pointed at.
            citations.clear();
            true
        }
        Part::Text { .. } => false,
        _ => true,
    });
    if !placed {
        parts.push(Part::text(text));
    }
}

/// A message's content as parts: its `parts`, or one text part holding `content` when it
/// has none.
pub fn content_parts<'a>(content: &'a str, parts: &'a [Part]) -> Cow<'a, [Part]> {
    if parts.is_empty() {
        Cow::Owned(vec![Part::text(content)])
    } else {
        Cow::Borrowed(parts)
    }
}

/// Attachment bytes: held here, or kept in a blob store.
///
/// Serialised as `{"bytes": "<base64>"}` or `{"blob": {"key": ..., "size": ..., "sha256": ...}}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Binary {
    /// The bytes.
    Bytes(#[serde(with = "base64_bytes")] Bytes),
    /// A reference to bytes in a [`BlobStore`](crate::blob::BlobStore).
    Blob(BlobRef),
}

impl Binary {
    /// How many bytes.
    pub fn len(&self) -> u64 {
        match self {
            Self::Bytes(bytes) => bytes.len() as u64,
            Self::Blob(blob) => blob.size,
        }
    }

    /// `true` when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, when held here.
    pub fn bytes(&self) -> Option<&Bytes> {
        match self {
            Self::Bytes(bytes) => Some(bytes),
            Self::Blob(_) => None,
        }
    }
}

impl fmt::Debug for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            Self::Blob(blob) => f.debug_tuple("Blob").field(blob).finish(),
        }
    }
}

/// Where a blob store keeps an attachment's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// The blob store's key.
    pub key: String,
    /// How many bytes.
    pub size: u64,
    /// Their SHA-256, lowercase hex, checked when they are read back.
    pub sha256: String,
}

mod base64_bytes {
    use super::*;

    pub(super) fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = <Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

macro_rules! formats {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal, $mime:literal;)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $(
                #[doc = concat!("`", $text, "` (", $mime, ")")]
                $variant,
            )+
        }

        impl $name {
            /// Every format.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The name Bedrock uses (`png`, `pdf`, ...).
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The media type.
            pub fn mime(&self) -> &'static str {
                match self {
                    $(Self::$variant => $mime,)+
                }
            }

            /// The format named `name` (as [`as_str`](Self::as_str) names it, any case).
            pub fn parse(name: &str) -> Option<Self> {
                let name = name.to_ascii_lowercase();
                match name.as_str() {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// The format of media type `mime` (parameters ignored).
            pub fn from_mime(mime: &str) -> Option<Self> {
                let essence = mime.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
                match essence.as_str() {
                    $($mime => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

formats! {
    /// An image format Bedrock's Converse API takes.
    ImageFormat {
        Png = "png", "image/png";
        Jpeg = "jpeg", "image/jpeg";
        Gif = "gif", "image/gif";
        Webp = "webp", "image/webp";
    }
}

formats! {
    /// A document format Bedrock's Converse API takes.
    DocumentFormat {
        Pdf = "pdf", "application/pdf";
        Csv = "csv", "text/csv";
        Doc = "doc", "application/msword";
        Docx = "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
        Xls = "xls", "application/vnd.ms-excel";
        Xlsx = "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
        Html = "html", "text/html";
        Txt = "txt", "text/plain";
        Md = "md", "text/markdown";
    }
}

impl ImageFormat {
    /// The format whose signature starts `bytes`, if any.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }

    /// Width and height in pixels, read from the image's header.
    pub fn dimensions(bytes: &[u8]) -> Option<(u64, u64)> {
        imagesize::blob_size(bytes)
            .ok()
            .map(|size| (size.width as u64, size.height as u64))
    }
}

impl DocumentFormat {
    /// `true` when `bytes` can be a document of this format: the signature of the binary
    /// formats (`%PDF-`, a zip for docx / xlsx, an OLE file for doc / xls), UTF-8 for the
    /// text ones.
    pub fn accepts(&self, bytes: &[u8]) -> bool {
        match self {
            Self::Pdf => bytes.starts_with(b"%PDF-"),
            Self::Docx | Self::Xlsx => bytes.starts_with(b"PK\x03\x04"),
            Self::Doc | Self::Xls => {
                bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1])
            }
            Self::Csv | Self::Html | Self::Txt | Self::Md => std::str::from_utf8(bytes).is_ok(),
        }
    }

    /// `true` for the formats that are text (csv, html, txt, md).
    pub fn is_text(&self) -> bool {
        matches!(self, Self::Csv | Self::Html | Self::Txt | Self::Md)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parts_serialise_with_a_type_tag_and_base64_bytes() {
        let part = Part::image(ImageFormat::Png, vec![0u8, 1, 2, 255]);
        let value = serde_json::to_value(&part).unwrap();
        assert_eq!(
            value,
            json!({"type": "image", "format": "png", "source": {"bytes": "AAEC/w=="}})
        );
        assert_eq!(serde_json::from_value::<Part>(value).unwrap(), part);
        let blob = Part::Document {
            format: DocumentFormat::Pdf,
            name: "report".into(),
            source: Binary::Blob(BlobRef {
                key: "k".into(),
                size: 3,
                sha256: "ab".into(),
            }),
        };
        let value = serde_json::to_value(&blob).unwrap();
        assert_eq!(
            value["source"],
            json!({"blob": {"key": "k", "size": 3, "sha256": "ab"}})
        );
        assert_eq!(serde_json::from_value::<Part>(value).unwrap(), blob);
        let result = Part::ToolResult {
            tool_use_id: "t1".into(),
            output: json!("12:00"),
            is_error: false,
        };
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            json!({"type": "tool_result", "tool_use_id": "t1", "output": "12:00"})
        );
    }

    #[test]
    fn bad_base64_is_an_error_not_a_panic() {
        let value = json!({"type": "image", "format": "png", "source": {"bytes": "not base64!"}});
        assert!(serde_json::from_value::<Part>(value).is_err());
    }

    #[test]
    fn formats_parse_by_name_and_media_type() {
        assert_eq!(ImageFormat::parse("JPEG"), Some(ImageFormat::Jpeg));
        assert_eq!(
            ImageFormat::from_mime("image/webp; q=1"),
            Some(ImageFormat::Webp)
        );
        assert_eq!(
            DocumentFormat::from_mime("text/markdown"),
            Some(DocumentFormat::Md)
        );
        assert_eq!(DocumentFormat::parse("exe"), None);
        assert_eq!(DocumentFormat::ALL.len(), 9);
    }

    #[test]
    fn signatures_are_checked() {
        assert_eq!(
            ImageFormat::sniff(b"\x89PNG\r\n\x1a\nrest"),
            Some(ImageFormat::Png)
        );
        assert_eq!(ImageFormat::sniff(b"GIF89a"), Some(ImageFormat::Gif));
        assert_eq!(
            ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageFormat::Webp)
        );
        assert_eq!(ImageFormat::sniff(b"%PDF-1.7"), None);
        assert!(DocumentFormat::Pdf.accepts(b"%PDF-1.7"));
        assert!(!DocumentFormat::Pdf.accepts(b"PK\x03\x04"));
        assert!(DocumentFormat::Docx.accepts(b"PK\x03\x04"));
        assert!(!DocumentFormat::Txt.accepts(&[0xFF, 0xFE, 0x00]));
    }

    #[test]
    fn content_is_the_text_parts_joined() {
        assert_eq!(text_of(&[]), "");
        let parts = vec![Part::text("only")];
        assert_eq!(content_parts("ignored", &parts).len(), 1);
        assert_eq!(content_parts("plain", &[])[0].as_text(), Some("plain"));
    }
}
