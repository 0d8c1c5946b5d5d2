//! Files attached to a message (`ask --attach FILE`, the chat's `/attach PATH`): read and
//! turned into library [`Part`]s by their extension. The library checks them against
//! Bedrock's limits when the message is sent.

use std::path::Path;

use bedrock_chat_core::parts::{DocumentFormat, ImageFormat, Part};
use bedrock_chat_core::service::document_name;

use super::exit::Failure;

/// The extensions taken, as `--help` and the errors list them.
pub const EXTENSIONS: &str =
    "images: png, jpg, jpeg, gif, webp; documents: pdf, csv, doc, docx, xls, xlsx, html, htm, txt, md";

/// What a file's extension says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// An image.
    Image(ImageFormat),
    /// A document.
    Document(DocumentFormat),
}

/// The kind of file `path` names, by its extension (any case).
pub fn kind_of(path: &Path) -> Option<FileKind> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "jpg" => Some(FileKind::Image(ImageFormat::Jpeg)),
        "htm" => Some(FileKind::Document(DocumentFormat::Html)),
        other => ImageFormat::parse(other)
            .map(FileKind::Image)
            .or_else(|| DocumentFormat::parse(other).map(FileKind::Document)),
    }
}

/// The file at `path` as an attachment: an image, or a document named after the file.
///
/// # Errors
/// [`Failure::Usage`] for an extension not taken or a file that cannot be read.
pub fn read(path: &Path) -> Result<Part, Failure> {
    let kind = kind_of(path).ok_or_else(|| {
        Failure::Usage(format!(
            "{}: cannot attach this kind of file (by its extension); {EXTENSIONS}",
            path.display()
        ))
    })?;
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::Usage(format!("{}: cannot read it: {e}", path.display())))?;
    Ok(match kind {
        FileKind::Image(format) => Part::image(format, bytes),
        FileKind::Document(format) => {
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Part::document(format, document_name(&file_name), bytes)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_name_the_format() {
        assert_eq!(
            kind_of(Path::new("a/Photo.JPG")),
            Some(FileKind::Image(ImageFormat::Jpeg))
        );
        assert_eq!(
            kind_of(Path::new("notes.md")),
            Some(FileKind::Document(DocumentFormat::Md))
        );
        assert_eq!(
            kind_of(Path::new("page.htm")),
            Some(FileKind::Document(DocumentFormat::Html))
        );
        assert_eq!(kind_of(Path::new("archive.tar")), None);
        assert_eq!(kind_of(Path::new("README")), None);
    }

    #[test]
    fn an_unknown_extension_is_a_usage_error() {
        let error = read(Path::new("song.mp3")).unwrap_err();
        assert!(matches!(error, Failure::Usage(_)), "{error}");
        assert_eq!(error.exit_code(), super::super::exit::BAD_INPUT);
    }
}
