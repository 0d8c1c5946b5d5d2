//! Citations: where in the documents of a conversation the words of an answer come from.
//!
//! Ask for them with [`InferenceConfig::with_citations`](crate::InferenceConfig::with_citations):
//! every document of the request is then sent with citations turned on (on the models that
//! cite, see [`bedrock::supports_citations`](crate)), and the model's answer says which of
//! its words rest on which passage of which document.
//!
//! An answer's citations are kept with its text: a [`Part::Text`](crate::Part::Text) carries
//! the [`Citation`]s of its own text, each naming the span it supports by character offsets
//! (Unicode scalar values, not bytes), so they are stored, listed and exported with the
//! message in every store. They are for people: the next turn sends the answer's text
//! alone, which every model takes.
//!
//! ```
//! use bedrock_chat_core::citation::{Citation, CitationLocation};
//! let answer = "Leave is 20 days a year.";
//! let citation = Citation::new(9, 23, "20 days annual leave")
//!     .with_title("policy")
//!     .with_location(CitationLocation::Characters { document_index: 0, start: 40, end: 60 });
//! assert_eq!(citation.cited_in(answer), "20 days a year");
//! ```

use serde::{Deserialize, Serialize};

/// One span of an answer, and the passage of a document it rests on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Citation {
    /// Where the span starts in the text it annotates, in characters.
    pub start: usize,
    /// Where it ends (exclusive), in characters.
    pub end: usize,
    /// The cited document's title (Bedrock gives the document's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The words of the document it quotes.
    pub quote: String,
    /// Where in the document they are, when the model says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<CitationLocation>,
}

/// Where cited words are in a document: which document of the request (its index among
/// the request's documents, oldest first) and which characters, pages or chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CitationLocation {
    /// Characters `start..end` of a text document.
    Characters {
        /// The document's index in the request.
        document_index: u32,
        /// The first character.
        start: u32,
        /// The character after the last.
        end: u32,
    },
    /// Pages `start..end` of a PDF (numbered from 1; `end` exclusive).
    Pages {
        /// The document's index in the request.
        document_index: u32,
        /// The first page.
        start: u32,
        /// The page after the last.
        end: u32,
    },
    /// Chunks `start..end` of a document sent as chunks.
    Chunks {
        /// The document's index in the request.
        document_index: u32,
        /// The first chunk.
        start: u32,
        /// The chunk after the last.
        end: u32,
    },
}

impl CitationLocation {
    /// The cited document's index among the request's documents.
    pub fn document_index(&self) -> u32 {
        match *self {
            Self::Characters { document_index, .. }
            | Self::Pages { document_index, .. }
            | Self::Chunks { document_index, .. } => document_index,
        }
    }

    /// For people: `characters 40–60`, `page 3`, `pages 3–4`, `chunk 2`.
    pub fn describe(&self) -> String {
        let (unit, units, start, end) = match *self {
            Self::Characters { start, end, .. } => ("character", "characters", start, end),
            Self::Pages { start, end, .. } => ("page", "pages", start, end),
            Self::Chunks { start, end, .. } => ("chunk", "chunks", start, end),
        };
        match end.saturating_sub(start) {
            0 | 1 => format!("{unit} {start}"),
            _ if unit == "character" => format!("{units} {start}–{end}"),
            _ => format!("{units} {start}–{}", end - 1),
        }
    }
}

impl Citation {
    /// Characters `start..end` of the answer rest on `quote`.
    pub fn new(start: usize, end: usize, quote: impl Into<String>) -> Self {
        Self {
            start,
            end: end.max(start),
            title: None,
            quote: quote.into(),
            location: None,
        }
    }

    /// Sets [`title`](Self::title).
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Sets [`location`](Self::location).
    pub fn with_location(mut self, location: CitationLocation) -> Self {
        self.location = Some(location);
        self
    }

    /// The words of `text` this citation supports (empty when its span is past the end).
    pub fn cited_in<'a>(&self, text: &'a str) -> &'a str {
        let at = |chars: usize| {
            text.char_indices()
                .nth(chars)
                .map_or(text.len(), |(byte, _)| byte)
        };
        let start = at(self.start);
        &text[start..at(self.end).max(start)]
    }

    /// The citation one line long, for transcripts and terminals: `“QUOTE” (TITLE,
    /// LOCATION)`.
    ///
    /// ```
    /// use bedrock_chat_core::citation::{Citation, CitationLocation};
    /// let c = Citation::new(0, 4, "twenty days")
    ///     .with_title("policy")
    ///     .with_location(CitationLocation::Pages { document_index: 0, start: 3, end: 4 });
    /// assert_eq!(c.describe(), "“twenty days” (policy, page 3)");
    /// ```
    pub fn describe(&self) -> String {
        let quote = self.quote.split_whitespace().collect::<Vec<_>>().join(" ");
        let source = [
            self.title.as_deref().map(|t| t.replace(['\r', '\n'], " ")),
            self.location.as_ref().map(CitationLocation::describe),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        match source.is_empty() {
            true => format!("“{quote}”"),
            false => format!("“{quote}” ({source})"),
        }
    }
}

/// The citations of a message's parts, each with the words it supports, in order.
pub fn citations_of(parts: &[crate::Part]) -> Vec<(&str, &Citation)> {
    parts
        .iter()
        .filter_map(|part| match part {
            crate::Part::Text { text, citations } => Some((text, citations)),
            _ => None,
        })
        .flat_map(|(text, citations)| citations.iter().map(|c| (c.cited_in(text), c)))
        .collect()
}

/// The passage a stand-in model (the offline model, FakeBedrock) cites in a text
/// document: its first line with words, up to the end of its first sentence or 200
/// characters. `(start, end, quote)`, counted in characters of `text`.
pub(crate) fn first_passage(text: &str) -> Option<(usize, usize, String)> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let lead = line.chars().count() - trimmed.chars().count();
        let body = trimmed.trim_end();
        if body.chars().any(char::is_alphanumeric) {
            let mut quote = String::new();
            for c in body.chars().take(200) {
                quote.push(c);
                if matches!(c, '.' | '!' | '?') && quote.chars().count() >= 20 {
                    break;
                }
            }
            let start = offset + lead;
            return Some((start, start + quote.chars().count(), quote));
        }
        offset += line.chars().count();
    }
    None
}

/// The newest text document of `messages` that has a passage to cite: its index among
/// the documents (oldest first), its name, and the passage.
pub(crate) fn cited_document(
    messages: &[crate::model::ModelMessage],
) -> Option<(u32, &str, (usize, usize, String))> {
    let documents = messages
        .iter()
        .flat_map(|m| &m.parts)
        .filter_map(|p| match p {
            crate::Part::Document {
                format,
                name,
                source,
            } => Some((*format, name.as_str(), source)),
            _ => None,
        });
    documents
        .enumerate()
        .filter(|(_, (format, _, _))| format.is_text())
        .filter_map(|(index, (_, name, source))| {
            let text = std::str::from_utf8(source.bytes()?).ok()?;
            Some((u32::try_from(index).ok()?, name, first_passage(text)?))
        })
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passage_is_the_first_sentence_of_the_first_line_with_words() {
        let text = "\n  # Leave policy\nEmployees get 20 days. More later.";
        let (start, end, quote) = first_passage(text).unwrap();
        assert_eq!(quote, "# Leave policy");
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(chars[start..end].iter().collect::<String>(), quote);
        let (start, end, quote) = first_passage("Employees get 20 days. More later.").unwrap();
        assert_eq!(
            (start, end, quote.as_str()),
            (0, 22, "Employees get 20 days.")
        );
        assert_eq!(first_passage(" \n--\n"), None);
    }

    #[test]
    fn spans_count_characters_not_bytes() {
        let text = "Ça coûte 5 €, dit-il.";
        let citation = Citation::new(9, 12, "5 euros");
        assert_eq!(citation.cited_in(text), "5 €");
        assert_eq!(Citation::new(19, 40, "x").cited_in(text), "l.");
        assert_eq!(Citation::new(40, 50, "x").cited_in(text), "");
        assert_eq!(Citation::new(5, 2, "x").cited_in(text), "");
    }

    #[test]
    fn locations_read_as_people_say_them() {
        let chars = CitationLocation::Characters {
            document_index: 1,
            start: 10,
            end: 42,
        };
        assert_eq!(chars.describe(), "characters 10–42");
        assert_eq!(chars.document_index(), 1);
        let pages = CitationLocation::Pages {
            document_index: 0,
            start: 2,
            end: 5,
        };
        assert_eq!(pages.describe(), "pages 2–4");
        let chunk = CitationLocation::Chunks {
            document_index: 0,
            start: 7,
            end: 8,
        };
        assert_eq!(chunk.describe(), "chunk 7");
        let quoted = Citation::new(0, 1, "line one\nline two").with_title("a\nb");
        assert_eq!(quoted.describe(), "“line one line two” (a b)");
    }

    #[test]
    fn a_citation_is_stored_as_json_that_reads_back() {
        let citation = Citation::new(3, 9, "quoted").with_location(CitationLocation::Pages {
            document_index: 2,
            start: 1,
            end: 2,
        });
        let json = serde_json::to_value(&citation).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "start": 3, "end": 9, "quote": "quoted",
                "location": {"kind": "pages", "document_index": 2, "start": 1, "end": 2}
            })
        );
        assert_eq!(serde_json::from_value::<Citation>(json).unwrap(), citation);
    }
}
