//! Attachments on a send: checked against Bedrock's limits before the model is called.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::InvalidInput;
use crate::model::ModelMessage;
use crate::parts::{Binary, ImageFormat, Part};

/// What a send may attach. The defaults are Bedrock Converse's own limits, so a send that
/// passes here is not refused by Bedrock for its attachments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AttachmentLimits {
    /// Images per message (Bedrock: 20).
    pub max_images: usize,
    /// Bytes per image (Bedrock: 3.75 MB).
    pub max_image_bytes: u64,
    /// Pixels on an image's longer edge (Bedrock: 8,000).
    pub max_image_edge: u64,
    /// Documents per message (Bedrock: 5).
    pub max_documents: usize,
    /// Bytes per document (Bedrock: 4.5 MB).
    pub max_document_bytes: u64,
}

impl Default for AttachmentLimits {
    fn default() -> Self {
        Self {
            max_images: 20,
            max_image_bytes: 3_750_000,
            max_image_edge: 8_000,
            max_documents: 5,
            max_document_bytes: 4_500_000,
        }
    }
}

impl AttachmentLimits {
    /// Limits that refuse every attachment.
    pub fn none() -> Self {
        Self {
            max_images: 0,
            max_documents: 0,
            ..Self::default()
        }
    }

    /// Checks a send's attachments: images and documents only, holding their bytes, each
    /// what its format says (by its signature), within the counts and sizes, documents
    /// named as Bedrock requires and each name used once.
    ///
    /// # Errors
    /// [`InvalidInput`] naming `attachments[i]`: too large or too many (413), a format or
    /// bytes that do not match (415), anything else (400).
    pub fn check(&self, attachments: &[Part]) -> Result<(), InvalidInput> {
        let (mut images, mut documents) = (0usize, 0usize);
        let mut names = HashSet::new();
        for (i, part) in attachments.iter().enumerate() {
            let field = || format!("attachments[{i}]");
            let bytes = match part.binary() {
                Some(Binary::Bytes(bytes)) if part.is_attachment() => bytes,
                Some(Binary::Blob(_)) if part.is_attachment() => {
                    return Err(InvalidInput::new(field(), "must carry its bytes"));
                }
                _ => {
                    return Err(InvalidInput::new(
                        field(),
                        format!(
                            "a {} part cannot be attached; attach images and documents",
                            part.kind()
                        ),
                    ))
                }
            };
            if bytes.is_empty() {
                return Err(InvalidInput::new(field(), "is empty"));
            }
            match part {
                Part::Image { format, .. } => {
                    images += 1;
                    if images > self.max_images {
                        return Err(InvalidInput::too_large(
                            field(),
                            format!(
                                "at most {} images can be attached to a message",
                                self.max_images
                            ),
                        ));
                    }
                    if bytes.len() as u64 > self.max_image_bytes {
                        return Err(InvalidInput::too_large(
                            field(),
                            format!("an image must be at most {} bytes", self.max_image_bytes),
                        ));
                    }
                    if ImageFormat::sniff(bytes) != Some(*format) {
                        return Err(InvalidInput::unsupported_media_type(
                            field(),
                            format!("is not a {format} image"),
                        ));
                    }
                    if let Some((w, h)) = ImageFormat::dimensions(bytes) {
                        if w.max(h) > self.max_image_edge {
                            return Err(InvalidInput::too_large(
                                field(),
                                format!(
                                    "an image must be at most {} pixels wide and high",
                                    self.max_image_edge
                                ),
                            ));
                        }
                    }
                }
                Part::Document { format, name, .. } => {
                    documents += 1;
                    if documents > self.max_documents {
                        return Err(InvalidInput::too_large(
                            field(),
                            format!(
                                "at most {} documents can be attached to a message",
                                self.max_documents
                            ),
                        ));
                    }
                    if bytes.len() as u64 > self.max_document_bytes {
                        return Err(InvalidInput::too_large(
                            field(),
                            format!(
                                "a document must be at most {} bytes",
                                self.max_document_bytes
                            ),
                        ));
                    }
                    if !format.accepts(bytes) {
                        return Err(InvalidInput::unsupported_media_type(
                            field(),
                            format!("is not a {format} document"),
                        ));
                    }
                    check_document_name(name).map_err(|reason| {
                        InvalidInput::new(format!("attachments[{i}].name"), reason)
                    })?;
                    if !names.insert(name.as_str()) {
                        return Err(InvalidInput::new(
                            format!("attachments[{i}].name"),
                            "is the name of another document of this message",
                        ));
                    }
                }
                _ => unreachable!("only attachments get here"),
            }
        }
        Ok(())
    }
}

/// Keeps a context window within the per-request attachment counts: Bedrock takes at most
/// [`max_images`](AttachmentLimits::max_images) images and
/// [`max_documents`](AttachmentLimits::max_documents) documents in a whole request, so
/// attachments of older turns over those counts (the newest are kept) are replaced by a
/// line of text saying what was left out.
pub(crate) fn fit_attachments(turns: &mut [ModelMessage], limits: &AttachmentLimits) {
    let (mut images, mut documents) = (0usize, 0usize);
    for turn in turns.iter_mut().rev() {
        if turn.parts.is_empty() {
            continue;
        }
        let mut changed = false;
        for part in turn.parts.iter_mut().rev() {
            let over = match part {
                Part::Image { .. } => {
                    images += 1;
                    images > limits.max_images
                }
                Part::Document { .. } => {
                    documents += 1;
                    documents > limits.max_documents
                }
                _ => false,
            };
            if over {
                let note = match part {
                    Part::Document { name, format, .. } => {
                        format!("[document \"{name}\" ({format}) left out: too many attachments in this conversation]")
                    }
                    _ => "[image left out: too many attachments in this conversation]".to_owned(),
                };
                *part = Part::text(note);
                changed = true;
            }
        }
        if changed {
            turn.content = crate::parts::text_of(&turn.parts);
        }
    }
}

/// Bedrock's rule for a document's name: 1 to 200 characters of letters, digits, spaces
/// (never two in a row), hyphens, parentheses and square brackets.
fn check_document_name(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() {
        return Err("must not be empty");
    }
    if name.chars().count() > 200 {
        return Err("must be at most 200 characters");
    }
    if name.contains("  ") || name != name.trim() {
        return Err("must not start or end with a space or hold two spaces in a row");
    }
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, ' ' | '-' | '(' | ')' | '[' | ']');
    if !name.chars().all(allowed) {
        return Err("may hold only letters, digits, single spaces, hyphens, parentheses and square brackets");
    }
    Ok(())
}

/// A name Bedrock accepts for a document, made from a file name: its stem, with every
/// other character replaced by a space and spaces collapsed; `document` when nothing is
/// left.
///
/// ```
/// use bedrock_chat_core::service::document_name;
/// assert_eq!(document_name("Q3 report_final.v2.pdf"), "Q3 report final v2");
/// assert_eq!(document_name("...pdf"), "document");
/// ```
pub fn document_name(file_name: &str) -> String {
    let stem = match file_name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => file_name,
    };
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']') {
                c
            } else {
                ' '
            }
        })
        .collect();
    let name: String = cleaned
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect();
    let name = name.trim().to_owned();
    if name.is_empty() {
        "document".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InvalidKind;
    use crate::parts::DocumentFormat;

    const PNG_1X1: &[u8] = &[
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
        0x15, 0xC4, 0x89,
    ];

    fn kind(result: Result<(), InvalidInput>) -> (InvalidKind, String) {
        let e = result.unwrap_err();
        (e.kind, e.field)
    }

    #[test]
    fn good_attachments_pass() {
        let limits = AttachmentLimits::default();
        let parts = [
            Part::image(ImageFormat::Png, PNG_1X1.to_vec()),
            Part::document(DocumentFormat::Md, "notes (v2)", b"# hi".to_vec()),
            Part::document(DocumentFormat::Pdf, "report", b"%PDF-1.4".to_vec()),
        ];
        limits.check(&parts).unwrap();
    }

    #[test]
    fn each_fault_gets_its_kind_and_field() {
        let limits = AttachmentLimits::default();
        let png = || Part::image(ImageFormat::Png, PNG_1X1.to_vec());
        assert_eq!(
            kind(limits.check(&[png(), Part::image(ImageFormat::Jpeg, PNG_1X1.to_vec())])),
            (InvalidKind::UnsupportedMediaType, "attachments[1]".into())
        );
        assert_eq!(
            kind(limits.check(&[Part::document(
                DocumentFormat::Pdf,
                "x",
                b"PK\x03\x04".to_vec()
            )])),
            (InvalidKind::UnsupportedMediaType, "attachments[0]".into())
        );
        let small = AttachmentLimits {
            max_images: 1,
            max_image_bytes: 10,
            ..AttachmentLimits::default()
        };
        assert_eq!(kind(small.check(&[png()])).0, InvalidKind::TooLarge);
        let one = AttachmentLimits {
            max_images: 1,
            ..AttachmentLimits::default()
        };
        assert_eq!(
            kind(one.check(&[png(), png()])),
            (InvalidKind::TooLarge, "attachments[1]".into())
        );
        assert_eq!(
            kind(limits.check(&[Part::text("hi")])),
            (InvalidKind::Invalid, "attachments[0]".into())
        );
        assert_eq!(
            kind(limits.check(&[Part::document(DocumentFormat::Txt, "a/b", b"x".to_vec())])),
            (InvalidKind::Invalid, "attachments[0].name".into())
        );
        let twice = [
            Part::document(DocumentFormat::Txt, "a", b"x".to_vec()),
            Part::document(DocumentFormat::Txt, "a", b"y".to_vec()),
        ];
        assert_eq!(kind(limits.check(&twice)).1, "attachments[1].name");
        assert_eq!(
            kind(AttachmentLimits::none().check(&[png()])).0,
            InvalidKind::TooLarge
        );
    }

    #[test]
    fn older_attachments_over_the_request_counts_are_left_out() {
        let limits = AttachmentLimits {
            max_images: 1,
            max_documents: 1,
            ..AttachmentLimits::default()
        };
        let png = || Part::image(ImageFormat::Png, PNG_1X1.to_vec());
        let doc = |name: &str| Part::document(DocumentFormat::Txt, name, b"x".to_vec());
        let mut turns = vec![
            ModelMessage::user("").with_parts(vec![png(), doc("old"), Part::text("first")]),
            ModelMessage::assistant("ok"),
            ModelMessage::user("").with_parts(vec![png(), doc("new"), Part::text("second")]),
        ];
        fit_attachments(&mut turns, &limits);
        assert!(turns[2].parts[0].is_attachment() && turns[2].parts[1].is_attachment());
        assert!(turns[0].parts.iter().all(|p| !p.is_attachment()));
        assert!(turns[0].content.contains("document \"old\" (txt) left out"));
        assert!(turns[0].content.ends_with("first"));
        assert_eq!(turns[0].role, crate::types::Role::User);
    }

    #[test]
    fn document_names_are_made_acceptable() {
        assert_eq!(document_name("a  b.txt"), "a b");
        assert_eq!(document_name("noext"), "noext");
        assert!(check_document_name(&document_name("weird/€$#name!.md")).is_ok());
    }
}
