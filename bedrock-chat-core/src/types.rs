//! The domain: conversations, messages, token usage.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ChatId, MessageId, UserId};
use crate::parts::{text_of, Part};

/// A point in time, UTC, with microsecond precision (what every backend can hold).
pub type Timestamp = DateTime<Utc>;

/// Free-form JSON attached to a conversation or message (a JSON object).
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// Who wrote a message. Bedrock's Converse API knows these two; the system prompt is kept
/// on the conversation, not as a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person chatting.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// `"user"` or `"assistant"`, as stored and as Bedrock names them.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            _ => None,
        }
    }
}

/// Tokens a model call used, as the model reported them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens read (prompt, history, system prompt).
    pub input_tokens: u64,
    /// Tokens written (the reply).
    pub output_tokens: u64,
    /// What the model counted in all; usually the sum of the two.
    pub total_tokens: u64,
    /// Input tokens read from the prompt cache (billed cheaper), on top of `input_tokens`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache (billed dearer), on top of `input_tokens`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    /// Adds another call's figures (a send that called tools made several calls).
    fn add_assign(&mut self, other: Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.total_tokens = self.total_tokens.saturating_add(other.total_tokens);
        self.cache_read_tokens = self
            .cache_read_tokens
            .saturating_add(other.cache_read_tokens);
        self.cache_write_tokens = self
            .cache_write_tokens
            .saturating_add(other.cache_write_tokens);
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Usage with `total_tokens` the sum of the two.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens.saturating_add(output_tokens),
            cache_read_tokens: 0,
            cache_write_tokens: 0,
        }
    }

    /// Sets the prompt-cache figures: `read` tokens read from the cache and `write` tokens
    /// written to it. They are added to `total_tokens`, as Bedrock counts them.
    ///
    /// ```
    /// use bedrock_chat_core::Usage;
    /// let usage = Usage::new(10, 5).with_cache(100, 0);
    /// assert_eq!(usage.total_tokens, 115);
    /// assert_eq!(usage.cache_read_tokens, 100);
    /// ```
    #[must_use]
    pub fn with_cache(mut self, read: u64, write: u64) -> Self {
        self.total_tokens = self
            .input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(read)
            .saturating_add(write);
        self.cache_read_tokens = read;
        self.cache_write_tokens = write;
        self
    }

    /// The tokens a token budget is charged: input and output as they are, prompt-cache
    /// writes at 1.25 times and cache reads at a tenth (the ratios of Bedrock's prices for
    /// cached input), rounded up. Without caching, `input_tokens + output_tokens`.
    ///
    /// ```
    /// use bedrock_chat_core::Usage;
    /// assert_eq!(Usage::new(10, 5).budget_tokens(), 15);
    /// // 1,000 tokens read from the cache cost what 100 uncached ones do.
    /// assert_eq!(Usage::new(10, 5).with_cache(1_000, 0).budget_tokens(), 115);
    /// assert_eq!(Usage::new(10, 5).with_cache(0, 1_000).budget_tokens(), 1_265);
    /// ```
    pub fn budget_tokens(&self) -> u64 {
        let cache_write = self.cache_write_tokens.saturating_mul(5).div_ceil(4);
        let cache_read = self.cache_read_tokens.div_ceil(10);
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(cache_write)
            .saturating_add(cache_read)
    }

    /// The two added field by field, saturating at `u64::MAX`.
    ///
    /// ```
    /// use bedrock_chat_core::Usage;
    /// assert_eq!(Usage::new(1, 2).saturating_add(Usage::new(3, 4)), Usage::new(4, 6));
    /// ```
    #[must_use]
    pub fn saturating_add(self, other: Self) -> Self {
        Self {
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
            total_tokens: self.total_tokens.saturating_add(other.total_tokens),
            cache_read_tokens: self
                .cache_read_tokens
                .saturating_add(other.cache_read_tokens),
            cache_write_tokens: self
                .cache_write_tokens
                .saturating_add(other.cache_write_tokens),
        }
    }
}

/// A conversation: a titled, ordered list of messages owned by one user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Its id (`chat_id`).
    pub id: ChatId,
    /// The owner. Nobody else can see it.
    pub user_id: UserId,
    /// A title, by default the start of the first message.
    pub title: String,
    /// The system prompt (persona) used for every turn, unless a send overrides it.
    pub system_prompt: Option<String>,
    /// Free-form JSON.
    pub metadata: Metadata,
    /// How many messages it holds now.
    pub message_count: u64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it or its messages last changed.
    pub updated_at: Timestamp,
}

/// What to create a conversation with.
#[derive(Clone, Debug, PartialEq)]
pub struct NewConversation {
    /// Its id; [`NewConversation::new`] makes a fresh one.
    pub id: ChatId,
    /// The title.
    pub title: String,
    /// The system prompt (persona).
    pub system_prompt: Option<String>,
    /// Free-form JSON.
    pub metadata: Metadata,
}

impl NewConversation {
    /// A conversation with a fresh id and this title.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            id: ChatId::new(),
            title: title.into(),
            system_prompt: None,
            metadata: Metadata::new(),
        }
    }

    /// Sets the system prompt.
    pub fn with_system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = Some(prompt.into());
        self
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// Changes to a conversation; `None` leaves a field as it is.
///
/// ```
/// use bedrock_chat_core::ConversationUpdate;
/// let update = ConversationUpdate::new().with_title("Trip plans").without_system_prompt();
/// assert_eq!(update.title.as_deref(), Some("Trip plans"));
/// assert_eq!(update.system_prompt, Some(None));
/// assert_eq!(update.metadata, None);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ConversationUpdate {
    /// A new title.
    pub title: Option<String>,
    /// A new system prompt; `Some(None)` removes it.
    pub system_prompt: Option<Option<String>>,
    /// New metadata, replacing the old.
    pub metadata: Option<Metadata>,
}

impl ConversationUpdate {
    /// An update that changes nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a new title.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Sets a new system prompt.
    pub fn with_system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = Some(Some(prompt.into()));
        self
    }

    /// Removes the system prompt.
    pub fn without_system_prompt(mut self) -> Self {
        self.system_prompt = Some(None);
        self
    }

    /// Replaces the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Its id (`message_uid`, or `response_session_id` for a reply).
    pub id: MessageId,
    /// The conversation it belongs to.
    pub chat_id: ChatId,
    /// Its place in the conversation, assigned by the store: 1, 2, 3, ... in append order.
    pub seq: u64,
    /// Who wrote it.
    pub role: Role,
    /// The text, byte for byte as written. For a message with [`parts`](Self::parts), the
    /// text of its text parts ([`text_of`]).
    pub content: String,
    /// The whole content in order (text, images, documents, tool calls and results,
    /// reasoning), or empty for a message that is only text: then `content` is all of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// For a reply: the user message it answers.
    pub reply_to: Option<MessageId>,
    /// For a reply: the model that wrote it.
    pub model: Option<String>,
    /// For a reply: the tokens it cost.
    pub usage: Option<Usage>,
    /// Free-form JSON.
    pub metadata: Metadata,
    /// When it was stored.
    pub created_at: Timestamp,
    /// When it was last edited (equal to `created_at` until then).
    pub updated_at: Timestamp,
}

/// A message to append.
#[derive(Clone, Debug, PartialEq)]
pub struct NewMessage {
    /// Its id: the idempotency key of the append.
    pub id: MessageId,
    /// Who wrote it.
    pub role: Role,
    /// The text; with [`parts`](Self::parts), the text of its text parts.
    pub content: String,
    /// The whole content in order, or empty for a message that is only text (see
    /// [`Message::parts`]).
    pub parts: Vec<Part>,
    /// For a reply: the user message it answers.
    pub reply_to: Option<MessageId>,
    /// For a reply: the model that wrote it.
    pub model: Option<String>,
    /// For a reply: the tokens it cost.
    pub usage: Option<Usage>,
    /// Free-form JSON.
    pub metadata: Metadata,
}

impl NewMessage {
    /// A user message with a fresh id.
    pub fn user(content: impl Into<String>) -> Self {
        Self::with_role(Role::User, content)
    }

    /// An assistant message with a fresh id.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::with_role(Role::Assistant, content)
    }

    fn with_role(role: Role, content: impl Into<String>) -> Self {
        Self {
            id: MessageId::new(),
            role,
            content: content.into(),
            parts: Vec::new(),
            reply_to: None,
            model: None,
            usage: None,
            metadata: Metadata::new(),
        }
    }

    /// Sets the content from `parts`: `content` becomes the text of the text parts. A
    /// single text part is kept as plain text (no parts), as cheap as [`user`](Self::user).
    ///
    /// ```
    /// use bedrock_chat_core::NewMessage;
    /// use bedrock_chat_core::parts::{ImageFormat, Part};
    /// let message = NewMessage::user("")
    ///     .with_parts(vec![Part::image(ImageFormat::Png, vec![1, 2]), Part::text("What is it?")]);
    /// assert_eq!(message.content, "What is it?");
    /// assert_eq!(message.parts.len(), 2);
    /// assert!(NewMessage::user("").with_parts(vec![Part::text("hi")]).parts.is_empty());
    /// ```
    pub fn with_parts(mut self, parts: Vec<Part>) -> Self {
        self.content = text_of(&parts);
        self.parts = if parts.iter().all(Part::is_plain_text) && parts.len() <= 1 {
            Vec::new()
        } else {
            parts
        };
        self
    }

    /// Sets the id.
    pub fn with_id(mut self, id: MessageId) -> Self {
        self.id = id;
        self
    }

    /// Marks it as the reply to `to`.
    pub fn replying_to(mut self, to: MessageId) -> Self {
        self.reply_to = Some(to);
        self
    }

    /// Sets the usage.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// Sets the model id.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

impl Message {
    /// The content as parts: [`parts`](Self::parts), or one text part holding
    /// [`content`](Self::content) when it has none.
    pub fn content_parts(&self) -> std::borrow::Cow<'_, [Part]> {
        crate::parts::content_parts(&self.content, &self.parts)
    }
}

/// Changes to a message; `None` leaves a field as it is.
///
/// ```
/// use bedrock_chat_core::MessageUpdate;
/// let edit = MessageUpdate::new().with_content("fixed a typo");
/// assert_eq!(edit.content.as_deref(), Some("fixed a typo"));
/// assert_eq!(edit.metadata, None);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct MessageUpdate {
    /// New text. On a message with [`parts`](Message::parts), it replaces the text parts
    /// as [`replace_text`](crate::parts::replace_text) does and the attachments stay.
    pub content: Option<String>,
    /// New metadata, replacing the old.
    pub metadata: Option<Metadata>,
}

impl MessageUpdate {
    /// An update that changes nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets new text.
    pub fn with_content(mut self, content: impl Into<String>) -> Self {
        self.content = Some(content.into());
        self
    }

    /// Replaces the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

/// A user's totals: what they hold now, and what they have spent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Conversations the user has.
    pub conversations: u64,
    /// Messages in them.
    pub messages: u64,
    /// All-time token usage from the usage ledger
    /// ([`HistoryStore::record_usage`](crate::HistoryStore::record_usage)); deleting
    /// history does not lower it.
    pub usage: Usage,
    /// Model calls recorded in the ledger, all time.
    pub calls: u64,
}

/// A user's recorded usage on one UTC day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyUsage {
    /// The day, in UTC.
    pub day: NaiveDate,
    /// Tokens used that day.
    pub usage: Usage,
    /// Model calls recorded that day.
    pub calls: u64,
}
