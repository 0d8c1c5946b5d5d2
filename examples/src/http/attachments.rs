//! Attachments: the `attachments` of a send (base64 JSON, turned into library
//! [`Part`]s), and `GET /api/v1/messages/{message_id}/parts/{index}`, their bytes back.
//!
//! The checks against Bedrock's limits (counts, sizes, bytes that match the format,
//! document names) are the library's ([`AttachmentLimits`](bedrock_chat_core::service::AttachmentLimits));
//! here only what the JSON itself can get wrong: the base64 and the format's name.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bedrock_chat_core::parts::{Binary, DocumentFormat, ImageFormat, Part};
use bedrock_chat_core::service::document_name;
use serde::Deserialize;

use super::error::ApiError;
use super::identity::Caller;
use super::AppState;

/// An image or a document sent with a message, its bytes in base64.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRequest {
    /// `image` or `document`.
    #[serde(rename = "type")]
    pub kind: AttachmentKind,
    /// The format: its name (`png`, `jpeg`, `gif`, `webp`; `pdf`, `csv`, `doc`, `docx`,
    /// `xls`, `xlsx`, `html`, `txt`, `md`) or its media type (`image/png`,
    /// `application/pdf`, ...). Another is a 415.
    #[schema(example = "png")]
    pub format: String,
    /// A document's name as the model sees it (a file name will do: it is made
    /// acceptable to Bedrock); default `document-N`, N its place among the attachments
    /// from 1. Not for images.
    #[serde(default)]
    pub name: Option<String>,
    /// The bytes, base64 (standard alphabet, padded).
    #[schema(format = Byte)]
    pub data: String,
}

/// What an attachment is.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentKind {
    /// An image.
    Image,
    /// A document.
    Document,
}

impl AttachmentRequest {
    /// The library part for attachment `index` of a send.
    ///
    /// # Errors
    /// 400 naming `attachments[i].data` for bad base64 or `attachments[i].name` for a
    /// named image; 415 naming `attachments[i].format` for a format not taken.
    pub fn into_part(self, index: usize) -> Result<Part, ApiError> {
        let field = |name: &str| format!("attachments[{index}].{name}");
        let unsupported = || {
            let mut error = ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                format!(
                    "{}: `{}` is not a format of {} that the model takes",
                    field("format"),
                    self.format,
                    match self.kind {
                        AttachmentKind::Image => "image (png, jpeg, gif, webp)",
                        AttachmentKind::Document =>
                            "document (pdf, csv, doc, docx, xls, xlsx, html, txt, md)",
                    }
                ),
            );
            error.set_field(field("format"));
            error
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.data.as_bytes())
            .map_err(|e| {
                ApiError::invalid(
                    field("data"),
                    format!("{} is not base64: {e}", field("data")),
                )
            })?;
        let is_mime = self.format.contains('/');
        match self.kind {
            AttachmentKind::Image => {
                let format = if is_mime {
                    ImageFormat::from_mime(&self.format)
                } else if self.format.eq_ignore_ascii_case("jpg") {
                    Some(ImageFormat::Jpeg)
                } else {
                    ImageFormat::parse(&self.format)
                }
                .ok_or_else(unsupported)?;
                if self.name.is_some() {
                    return Err(ApiError::invalid(
                        field("name"),
                        format!("{}: only documents are named", field("name")),
                    ));
                }
                Ok(Part::image(format, bytes))
            }
            AttachmentKind::Document => {
                let format = if is_mime {
                    DocumentFormat::from_mime(&self.format)
                } else if self.format.eq_ignore_ascii_case("htm") {
                    Some(DocumentFormat::Html)
                } else {
                    DocumentFormat::parse(&self.format)
                }
                .ok_or_else(unsupported)?;
                let name = match &self.name {
                    Some(name) => document_name(name),
                    None => format!("document-{}", index + 1),
                };
                Ok(Part::document(format, name, bytes))
            }
        }
    }
}

/// `GET /api/v1/messages/{message_id}/parts/{index}`: an attachment's bytes.
#[utoipa::path(
    get,
    path = "/api/v1/messages/{message_id}/parts/{index}",
    tag = "messages",
    summary = "Download an attachment of a message",
    description = "The bytes of part `index` of the message (an image or a document; the `url` of a part in a message view), with its media type. Images are served inline, documents as a download named after the document.",
    params(
        ("message_id" = uuid::Uuid, Path, description = "The message"),
        ("index" = u32, Path, description = "The part's place in the message's `parts`, from 0", minimum = 0)
    ),
    responses(
        (status = 200, description = "The attachment's bytes (Content-Type: its format's media type; X-Content-Type-Options: nosniff; Cache-Control: private)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Bad input: the field at fault is named", body = super::error::ErrorBody),
        (status = 401, description = "Missing or invalid credentials (with WWW-Authenticate)", body = super::error::ErrorBody),
        (status = 404, description = "No such message for this caller, or no attachment at that index", body = super::error::ErrorBody),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
        (status = 503, description = "A backend is unavailable (with Retry-After)", body = super::error::ErrorBody),
        (status = 504, description = "Timed out", body = super::error::ErrorBody)
    )
)]
pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path((message_id, index)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = super::messages::parse_message_id(&message_id, "message_id")?;
    let index: usize = index
        .parse()
        .map_err(|_| ApiError::invalid("index", format!("`{index}` is not a part index")))?;
    let part = state.service.message_part(&caller.user, id, index).await?;
    let (mime, disposition, bytes) = match part {
        Part::Image { format, source } => (
            format.mime(),
            format!("inline; filename=\"image-{index}.{format}\""),
            source,
        ),
        Part::Document {
            format,
            name,
            source,
        } => (
            format.mime(),
            attachment_disposition(&name, format.as_str()),
            source,
        ),
        // Text, tool calls and reasoning are in the message view itself.
        _ => return Err(ApiError::not_found("Attachment")),
    };
    let Binary::Bytes(bytes) = bytes else {
        // `message_part` reads blobs back; a reference here is a broken invariant.
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            "the attachment's bytes could not be read",
        ));
    };
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    Ok(response)
}

/// `attachment` with a file name made of the document's name: an ASCII `filename` of
/// letters, digits, `-`, `(`, `)`, `[`, `]` and `_` for the rest, and the exact name as
/// RFC 5987's `filename*`.
fn attachment_disposition(name: &str, extension: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in format!("{name}.{extension}").bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}.{extension}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: AttachmentKind, format: &str, data: &str) -> AttachmentRequest {
        AttachmentRequest {
            kind,
            format: format.to_owned(),
            name: None,
            data: data.to_owned(),
        }
    }

    #[test]
    fn a_format_is_taken_by_name_or_media_type() {
        for format in ["png", "PNG", "image/png"] {
            let part = request(AttachmentKind::Image, format, "aGk=")
                .into_part(0)
                .unwrap();
            assert!(matches!(
                part,
                Part::Image {
                    format: ImageFormat::Png,
                    ..
                }
            ));
        }
        let part = request(AttachmentKind::Document, "text/plain", "aGk=")
            .into_part(2)
            .unwrap();
        assert!(matches!(
            part,
            Part::Document { format: DocumentFormat::Txt, ref name, .. } if name == "document-3"
        ));
    }

    #[test]
    fn bad_base64_is_a_400_and_an_unknown_format_a_415_naming_the_field() {
        let error = request(AttachmentKind::Image, "png", "***")
            .into_part(1)
            .unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error.body().field.as_deref(), Some("attachments[1].data"));
        let error = request(AttachmentKind::Image, "bmp", "aGk=")
            .into_part(0)
            .unwrap_err();
        assert_eq!(error.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(error.body().field.as_deref(), Some("attachments[0].format"));
    }

    #[test]
    fn a_document_file_name_becomes_a_safe_download_name() {
        assert_eq!(
            attachment_disposition("Q3 résumé", "pdf"),
            "attachment; filename=\"Q3_r_sum_.pdf\"; filename*=UTF-8''Q3%20r%C3%A9sum%C3%A9.pdf"
        );
    }
}
