//! The JSON shapes of stored things, as the API shows them.

use bedrock_chat_core::{
    ChatId, Conversation, Message, MessageId, Metadata, Page, Role, Timestamp, Usage,
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
    /// The text.
    pub content: String,
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
