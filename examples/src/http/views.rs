//! The JSON shapes of stored things, as the API shows them.

use bedrock_chat_core::citation::{Citation, CitationLocation};
use bedrock_chat_core::{
    ChatId, Conversation, Message, MessageId, Metadata, Page, Part, Role, Timestamp, Usage,
};
use serde::Serialize;

/// A conversation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    /// Its id.
    #[schema(value_type = uuid::Uuid)]
    pub chat_id: ChatId,
    /// Its title.
    pub title: String,
    /// Its system prompt (persona), if any.
    pub system_prompt: Option<String>,
    /// Free-form JSON.
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    /// How many messages it holds.
    pub message_count: u64,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<Conversation> for ConversationView {
    fn from(c: Conversation) -> Self {
        Self {
            chat_id: c.id,
            title: c.title,
            system_prompt: c.system_prompt,
            metadata: c.metadata,
            message_count: c.message_count,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    /// Its id.
    #[schema(value_type = uuid::Uuid)]
    pub message_id: MessageId,
    /// Its conversation.
    #[schema(value_type = uuid::Uuid)]
    pub chat_id: ChatId,
    /// Its place in the conversation (1, 2, ...).
    pub seq: u64,
    /// `user` or `assistant`.
    #[schema(value_type = super::openapi::RoleDoc)]
    pub role: Role,
    /// The text (of a message with `parts`: the text of its text parts).
    pub content: String,
    /// Only for a message that is more than text: its whole content in order, attachments
    /// without their bytes (download them from their `url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<PartView>>,
    /// For a reply: the message it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub reply_to: Option<MessageId>,
    /// For a reply: the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// For a reply: its tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::openapi::UsageDoc>)]
    pub usage: Option<Usage>,
    /// Free-form JSON.
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    /// When it was stored.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it was last edited.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        Self {
            message_id: m.id,
            chat_id: m.chat_id,
            seq: m.seq,
            role: m.role,
            parts: PartView::of_message(m.id, &m.parts),
            content: m.content,
            reply_to: m.reply_to,
            model: m.model,
            usage: m.usage,
            metadata: m.metadata,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// One part of a message, as the API shows it: an attachment by its format, name, size
/// and download address, never its bytes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartView {
    /// `text`, `image`, `document`, `tool_use`, `tool_result`, `reasoning`,
    /// `redacted_reasoning`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A text or reasoning part's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An attachment's format (`png`, `pdf`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
    /// A document's name; a tool call's tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An attachment's size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Where an attachment's bytes are: `/api/v1/messages/{message_id}/parts/{index}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A tool call's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A tool call's input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    /// The call a tool result answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    /// A tool result's output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// `true` for a tool result that is an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// A text part's citations: which of its words rest on which passage of which
    /// document (answers to documents sent while citations are on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citations: Option<Vec<CitationView>>,
}

/// One citation of an answer: the words of the answer it supports, and where they come
/// from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CitationView {
    /// Where the supported words start in the part's text, in characters (Unicode scalar
    /// values).
    pub start: usize,
    /// Where they end (exclusive), in characters.
    pub end: usize,
    /// Those words.
    pub cited_text: String,
    /// The cited document's title (its name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The words of the document quoted.
    pub quote: String,
    /// Where in the document: `{kind: characters|pages|chunks, document_index, start, end}`
    /// (the document's index among the request's documents, oldest first).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub location: Option<CitationLocation>,
}

impl CitationView {
    /// `citation` of `text`.
    pub fn of(text: &str, citation: &Citation) -> Self {
        Self::with_cited_text(citation.cited_in(text).to_owned(), citation)
    }

    /// `citation`, whose span holds `cited_text` (a stream's citation comes with the
    /// words it covers, the whole text not being there yet).
    pub fn with_cited_text(cited_text: String, citation: &Citation) -> Self {
        Self {
            start: citation.start,
            end: citation.end,
            cited_text,
            title: citation.title.clone(),
            quote: citation.quote.clone(),
            location: citation.location,
        }
    }

    /// The citations of a message's parts, in order.
    pub fn of_parts(parts: &[Part]) -> Option<Vec<Self>> {
        let views: Vec<Self> = parts
            .iter()
            .filter_map(|part| match part {
                Part::Text { text, citations } => Some((text, citations)),
                _ => None,
            })
            .flat_map(|(text, citations)| citations.iter().map(|c| Self::of(text, c)))
            .collect();
        (!views.is_empty()).then_some(views)
    }
}

impl PartView {
    /// The views of a message's parts, or `None` for a message that is only text.
    pub fn of_message(id: MessageId, parts: &[Part]) -> Option<Vec<Self>> {
        if parts.is_empty() {
            return None;
        }
        Some(
            parts
                .iter()
                .enumerate()
                .map(|(index, part)| Self::of(id, index, part))
                .collect(),
        )
    }

    /// Part `index` of message `id`.
    pub fn of(id: MessageId, index: usize, part: &Part) -> Self {
        let mut view = Self {
            kind: part.kind(),
            text: None,
            format: None,
            name: None,
            size: None,
            url: None,
            id: None,
            input: None,
            tool_use_id: None,
            output: None,
            is_error: None,
            citations: None,
        };
        if part.is_attachment() {
            view.size = part.binary().map(|b| b.len());
            view.url = Some(format!("/api/v1/messages/{id}/parts/{index}"));
        }
        match part {
            Part::Text { text, citations } => {
                view.text = Some(text.clone());
                if !citations.is_empty() {
                    view.citations = Some(
                        citations
                            .iter()
                            .map(|c| CitationView::of(text, c))
                            .collect(),
                    );
                }
            }
            Part::Image { format, .. } => view.format = Some(format.as_str()),
            Part::Document { format, name, .. } => {
                view.format = Some(format.as_str());
                view.name = Some(name.clone());
            }
            Part::ToolUse { id, name, input } => {
                view.id = Some(id.clone());
                view.name = Some(name.clone());
                view.input = Some(input.clone());
            }
            Part::ToolResult {
                tool_use_id,
                output,
                is_error,
            } => {
                view.tool_use_id = Some(tool_use_id.clone());
                view.output = Some(output.clone());
                view.is_error = Some(*is_error);
            }
            // The signature is the provider's business, sent back on the next turn.
            Part::Reasoning { text, .. } => view.text = Some(text.clone()),
            // Redacted reasoning and kinds added later: their type alone.
            _ => {}
        }
        view
    }
}

/// A page of a listing.
#[derive(Debug, Serialize)]
pub struct PageView<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass it as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> PageView<T> {
    /// A page of stored things, shown as `V`.
    pub fn of<S>(page: Page<S>) -> Self
    where
        T: From<S>,
    {
        Self {
            items: page.items.into_iter().map(T::from).collect(),
            next_cursor: page.next_cursor.map(|c| c.as_str().to_owned()),
        }
    }
}
