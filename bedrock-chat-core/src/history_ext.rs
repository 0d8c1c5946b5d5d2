//! [`HistoryStoreExt`]: what hosts build on top of any [`HistoryStore`] — offset paging for
//! clients that count, and export of a whole conversation as JSON or Markdown.

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use serde::Serialize;

use crate::error::{InvalidInput, StoreError};
use crate::ids::{ChatId, UserId};
use crate::parts::describe;
use crate::store::{Cursor, HistoryStore, ListOptions, Page, MAX_PAGE_LIMIT};
use crate::types::{Conversation, Message, Role};

/// The largest `offset` [`HistoryStoreExt::list_conversations_at_offset`] serves: offsets
/// are walked page by page, so they are bounded; clients that go further use cursors.
pub const MAX_OFFSET: u32 = 10_000;

/// Messages read per store call while exporting.
const EXPORT_PAGE: u32 = 200;

/// What [`HistoryStoreExt::export_conversation`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One JSON document: `{"conversation": {...}, "messages": [...]}`.
    Json,
    /// A readable Markdown transcript.
    Markdown,
}

impl ExportFormat {
    /// The MIME type of the export.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Markdown => "text/markdown; charset=utf-8",
        }
    }

    /// The file extension of the export (`json`, `md`).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Markdown => "md",
        }
    }
}

impl std::str::FromStr for ExportFormat {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, InvalidInput> {
        match s {
            "json" => Ok(Self::Json),
            "markdown" | "md" => Ok(Self::Markdown),
            _ => Err(InvalidInput::new("format", "must be `json` or `markdown`")),
        }
    }
}

/// A conversation's export, in pieces of text to write out in order.
pub type ExportStream<'a> = BoxStream<'a, Result<String, StoreError>>;

/// How a JSON export writes one message (see
/// [`HistoryStoreExt::export_conversation_with`]).
pub type MessageJson =
    dyn Fn(&Message) -> Result<serde_json::Value, serde_json::Error> + Send + Sync;

/// Operations every [`HistoryStore`] gets for free.
#[async_trait]
pub trait HistoryStoreExt: HistoryStore {
    /// The user's conversations (newest activity first), skipping `offset` of them: seed
    /// 000's `limit` / `offset` paging served on top of the keyset listing. The page's
    /// `next_cursor` continues from there with cursors.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for a bad limit or an offset over [`MAX_OFFSET`].
    async fn list_conversations_at_offset(
        &self,
        user: &UserId,
        offset: u32,
        limit: u32,
    ) -> Result<Page<Conversation>, StoreError> {
        ListOptions::first(limit).validate()?;
        if offset > MAX_OFFSET {
            return Err(InvalidInput::new(
                "offset",
                format!("must be at most {MAX_OFFSET}; page further with `cursor`"),
            )
            .into());
        }
        let mut skip = offset;
        let mut cursor: Option<Cursor> = None;
        while skip > 0 {
            let step = skip.min(MAX_PAGE_LIMIT);
            let options = match cursor.take() {
                Some(cursor) => ListOptions::after(step, cursor),
                None => ListOptions::first(step),
            };
            let page = self.list_conversations(user, options).await?;
            match page.next_cursor {
                Some(next) if page.items.len() as u32 == step => {
                    skip -= step;
                    cursor = Some(next);
                }
                // Fewer conversations than the offset: an empty page.
                _ => {
                    return Ok(Page {
                        items: Vec::new(),
                        next_cursor: None,
                    })
                }
            }
        }
        let options = match cursor {
            Some(cursor) => ListOptions::after(limit, cursor),
            None => ListOptions::first(limit),
        };
        self.list_conversations(user, options).await
    }

    /// Exports a whole conversation, reading its messages a page at a time (never one
    /// unbounded query), as a stream of text pieces.
    ///
    /// ```
    /// use bedrock_chat_core::history_ext::{ExportFormat, HistoryStoreExt};
    /// use bedrock_chat_core::{AppendRequest, HistoryStore, NewConversation, NewMessage, UserId};
    /// use bedrock_chat_store::InMemoryHistoryStore;
    /// use futures::TryStreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = InMemoryHistoryStore::new();
    /// let ada = UserId::new("ada")?;
    /// let new = NewConversation::new("Engines");
    /// let chat_id = new.id;
    /// store
    ///     .append(&ada, AppendRequest::create_if_missing(new, vec![NewMessage::user("Hello")]))
    ///     .await?;
    /// let markdown: String = store
    ///     .export_conversation(&ada, chat_id, ExportFormat::Markdown)
    ///     .await?
    ///     .try_collect()
    ///     .await?;
    /// assert!(markdown.starts_with("# Engines"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::NotFound`] at once when the user has no such conversation; a store
    /// failure while paging ends the stream with that error.
    async fn export_conversation<'a>(
        &'a self,
        user: &'a UserId,
        chat_id: ChatId,
        format: ExportFormat,
    ) -> Result<ExportStream<'a>, StoreError> {
        self.export_conversation_with(user, chat_id, format, &|m| serde_json::to_value(m))
            .await
    }

    /// [`export_conversation`](Self::export_conversation) with each message of a JSON
    /// export written as `message_json` gives it: a host shows attachments its own way (a
    /// download address instead of the bytes, say). Markdown exports are the same either
    /// way.
    ///
    /// # Errors
    /// As [`export_conversation`](Self::export_conversation).
    async fn export_conversation_with<'a>(
        &'a self,
        user: &'a UserId,
        chat_id: ChatId,
        format: ExportFormat,
        message_json: &'a MessageJson,
    ) -> Result<ExportStream<'a>, StoreError> {
        let conversation = self.get_conversation(user, chat_id).await?;
        let head = match format {
            ExportFormat::Json => json_head(&conversation)?,
            ExportFormat::Markdown => markdown_head(&conversation),
        };
        let pages = stream::try_unfold(
            (Some(ListOptions::first(EXPORT_PAGE)), true),
            move |(options, first)| async move {
                let Some(options) = options else {
                    return Ok(None);
                };
                let page = self.list_messages(user, chat_id, options).await?;
                let mut out = String::new();
                let mut first = first;
                for message in &page.items {
                    match format {
                        ExportFormat::Json => {
                            if !first {
                                out.push(',');
                            }
                            let value = message_json(message).map_err(encoding_failed)?;
                            out.push_str(&value.to_string());
                        }
                        ExportFormat::Markdown => markdown_message(&mut out, message),
                    }
                    first = false;
                }
                let next = page
                    .next_cursor
                    .map(|cursor| ListOptions::after(EXPORT_PAGE, cursor));
                Ok(Some((out, (next, first))))
            },
        );
        let tail = match format {
            ExportFormat::Json => "]}\n",
            ExportFormat::Markdown => "",
        };
        Ok(stream::once(async move { Ok(head) })
            .chain(pages.filter(|piece| {
                let keep = !matches!(piece, Ok(text) if text.is_empty());
                async move { keep }
            }))
            .chain(stream::once(async move { Ok(tail.to_owned()) }))
            .boxed())
    }
}

impl<T: HistoryStore + ?Sized> HistoryStoreExt for T {}

fn encoding_failed(error: serde_json::Error) -> StoreError {
    StoreError::Backend {
        backend: "export",
        source: Box::new(error),
    }
}

fn json_head(conversation: &Conversation) -> Result<String, StoreError> {
    let conversation = serde_json::to_string(conversation).map_err(encoding_failed)?;
    Ok(format!("{{\"conversation\":{conversation},\"messages\":["))
}

fn markdown_head(conversation: &Conversation) -> String {
    let mut out = format!("# {}\n\n", one_line(&conversation.title));
    out.push_str(&format!(
        "- conversation: `{}`\n- created: {}\n- messages: {}\n",
        conversation.id,
        conversation.created_at.to_rfc3339(),
        conversation.message_count
    ));
    if let Some(prompt) = &conversation.system_prompt {
        out.push_str("\n**System prompt**\n\n");
        push_quoted(&mut out, prompt);
    }
    out
}

fn markdown_message(out: &mut String, message: &Message) {
    let who = match message.role {
        Role::User => "User".to_owned(),
        Role::Assistant => match &message.model {
            Some(model) => format!("Assistant ({model})"),
            None => "Assistant".to_owned(),
        },
    };
    out.push_str(&format!(
        "\n---\n\n**{who}** · {}\n\n",
        message.created_at.to_rfc3339()
    ));
    out.push_str(&message.content);
    if !message.content.ends_with('\n') {
        out.push('\n');
    }
    let mut attachments = message.parts.iter().filter_map(describe).peekable();
    if attachments.peek().is_some() {
        out.push_str("\n**Attachments**\n\n");
        for line in attachments {
            out.push_str("- ");
            out.push_str(&line);
            out.push('\n');
        }
    }
    let citations = crate::citation::citations_of(&message.parts);
    if !citations.is_empty() {
        out.push_str("\n**Sources**\n\n");
        for (i, (cited, citation)) in citations.into_iter().enumerate() {
            out.push_str(&format!(
                "{}. “{}” ← {}\n",
                i + 1,
                one_line(cited),
                citation.describe()
            ));
        }
    }
}

/// `text` as a Markdown block quote.
fn push_quoted(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str("> ");
        out.push_str(line);
        out.push('\n');
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}
