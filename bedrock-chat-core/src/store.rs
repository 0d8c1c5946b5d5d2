//! The [`HistoryStore`] trait: conversations and their messages, scoped by user.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};

use crate::error::{InvalidInput, StoreError};
use crate::ids::{ChatId, MessageId, UserId};
use crate::types::{
    Conversation, ConversationUpdate, Message, MessageUpdate, NewConversation, NewMessage,
    Timestamp, UsageTotals,
};

/// The largest page a list call returns.
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// How many items a list call returns, and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListOptions {
    /// At most this many items, 1 to [`MAX_PAGE_LIMIT`].
    pub limit: u32,
    /// Where the previous page ended; `None` for the first page.
    pub cursor: Option<Cursor>,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self {
            limit: 20,
            cursor: None,
        }
    }
}

impl ListOptions {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self {
            limit,
            cursor: None,
        }
    }

    /// The page after `cursor`.
    pub fn after(limit: u32, cursor: Cursor) -> Self {
        Self {
            limit,
            cursor: Some(cursor),
        }
    }

    /// Checks the limit, then decodes the cursor of a conversation listing: the
    /// `(created_at, id)` the page starts before, `None` for the first page.
    ///
    /// # Errors
    /// [`InvalidInput`] for a bad limit or a cursor that is not a conversation cursor.
    pub fn conversations_before(&self) -> Result<Option<(Timestamp, ChatId)>, InvalidInput> {
        self.validate()?;
        self.cursor
            .as_ref()
            .map(Cursor::conversation_position)
            .transpose()
    }

    /// Checks the limit, then decodes the cursor of a message listing: the sequence
    /// number the page starts after, 0 for the first page.
    ///
    /// # Errors
    /// [`InvalidInput`] for a bad limit or a cursor that is not a message cursor.
    pub fn messages_after(&self) -> Result<u64, InvalidInput> {
        self.validate()?;
        Ok(self
            .cursor
            .as_ref()
            .map(Cursor::seq_position)
            .transpose()?
            .unwrap_or(0))
    }

    /// Checks the limit; backends call this first.
    ///
    /// # Errors
    /// [`InvalidInput`] for a limit of 0 or above [`MAX_PAGE_LIMIT`].
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.limit == 0 || self.limit > MAX_PAGE_LIMIT {
            return Err(InvalidInput::new(
                "limit",
                format!("must be between 1 and {MAX_PAGE_LIMIT}"),
            ));
        }
        Ok(())
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` when this was the last page.
    pub next_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` items fetched in listing order: the extra item only
    /// says that another page follows. `cursor_after` makes the next page's cursor from
    /// the last item kept.
    ///
    /// ```
    /// use bedrock_chat_core::{Cursor, Page};
    /// let page = Page::from_overfetched(vec![1, 2, 3], 2, |n| Cursor::after_seq(*n));
    /// assert_eq!(page.items, [1, 2]);
    /// assert_eq!(page.next_cursor, Some(Cursor::after_seq(2)));
    /// assert_eq!(Page::from_overfetched(vec![1], 2, |n| Cursor::after_seq(*n)).next_cursor, None);
    /// ```
    pub fn from_overfetched(
        mut items: Vec<T>,
        limit: u32,
        cursor_after: impl FnOnce(&T) -> Cursor,
    ) -> Self {
        let limit = limit as usize;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor_after)
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// An opaque position in a listing (keyset pagination): items that arrive while a client
/// pages through never make it see an item twice or miss one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps a cursor a client sent back; it is checked when used.
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The text to hand to clients.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The position just after `conversation` in a newest-first listing.
    pub fn after_conversation(conversation: &Conversation) -> Self {
        Self(format!(
            "c1.{}.{}",
            conversation.created_at.timestamp_micros(),
            conversation.id
        ))
    }

    /// Decodes a conversation cursor into `(created_at, id)`.
    ///
    /// # Errors
    /// [`InvalidInput`] on `cursor` when it was not made by
    /// [`after_conversation`](Self::after_conversation).
    pub fn conversation_position(&self) -> Result<(Timestamp, ChatId), InvalidInput> {
        let bad = || InvalidInput::new("cursor", "is not a conversation cursor");
        let rest = self.0.strip_prefix("c1.").ok_or_else(bad)?;
        let (micros, id) = rest.split_once('.').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let at = Utc.timestamp_micros(micros).single().ok_or_else(bad)?;
        let id = id.parse().map_err(|_| bad())?;
        Ok((at, id))
    }

    /// The position just after the message with sequence number `seq`.
    pub fn after_seq(seq: u64) -> Self {
        Self(format!("m1.{seq}"))
    }

    /// Decodes a message cursor into the sequence number it follows.
    ///
    /// # Errors
    /// [`InvalidInput`] on `cursor` when it was not made by [`after_seq`](Self::after_seq).
    pub fn seq_position(&self) -> Result<u64, InvalidInput> {
        self.0
            .strip_prefix("m1.")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| InvalidInput::new("cursor", "is not a message cursor"))
    }
}

/// Where an append goes.
#[derive(Clone, Debug, PartialEq)]
pub enum AppendTarget {
    /// A conversation that must exist already (else [`StoreError::NotFound`]).
    Existing(ChatId),
    /// Create this conversation in the same atomic write unless it exists already.
    CreateIfMissing(NewConversation),
}

impl AppendTarget {
    /// The conversation's id.
    pub fn chat_id(&self) -> ChatId {
        match self {
            Self::Existing(id) => *id,
            Self::CreateIfMissing(new) => new.id,
        }
    }
}

/// Messages to append to a conversation, all or nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendRequest {
    /// The conversation.
    pub target: AppendTarget,
    /// The messages, in order.
    pub messages: Vec<NewMessage>,
}

impl AppendRequest {
    /// Appends to an existing conversation.
    pub fn existing(chat_id: ChatId, messages: Vec<NewMessage>) -> Self {
        Self {
            target: AppendTarget::Existing(chat_id),
            messages,
        }
    }

    /// Appends to `conversation`, creating it in the same write if it does not exist.
    pub fn create_if_missing(conversation: NewConversation, messages: Vec<NewMessage>) -> Self {
        Self {
            target: AppendTarget::CreateIfMissing(conversation),
            messages,
        }
    }

    /// The conversation's id.
    pub fn chat_id(&self) -> ChatId {
        self.target.chat_id()
    }

    /// Checks what every backend must refuse: no messages, or one id twice.
    ///
    /// # Errors
    /// [`InvalidInput`] on `messages`.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.messages.is_empty() {
            return Err(InvalidInput::new("messages", "must not be empty"));
        }
        let mut seen = HashSet::with_capacity(self.messages.len());
        if !self.messages.iter().all(|m| seen.insert(m.id)) {
            return Err(InvalidInput::new("messages", "contain the same id twice"));
        }
        Ok(())
    }
}

/// What an append did.
#[derive(Clone, Debug, PartialEq)]
pub struct Appended {
    /// The messages as stored, with their sequence numbers, in request order.
    pub messages: Vec<Message>,
    /// `true` when every message was stored already by an earlier append with the same
    /// ids: nothing was written this time.
    pub already_stored: bool,
}

/// Conversations and their messages, kept per user.
///
/// Every method takes the acting [`UserId`]: a conversation or message that belongs to
/// someone else is [`StoreError::NotFound`], exactly as one that does not exist.
///
/// Backends: [`InMemoryHistoryStore`](https://docs.rs/bedrock-chat-store) always, and
/// SQLite, PostgreSQL, Redis and DynamoDB behind features of `bedrock-chat-store`. All
/// pass the same conformance suite (feature `conformance`).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// The backend's name (`memory`, `postgres`, ...), for logs and health checks.
    fn backend(&self) -> &'static str;

    /// Checks that the backend answers.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it does not.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates a conversation.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the id is taken.
    async fn create_conversation(
        &self,
        user: &UserId,
        conversation: NewConversation,
    ) -> Result<Conversation, StoreError>;

    /// One conversation.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user has no such conversation.
    async fn get_conversation(&self, user: &UserId, id: ChatId)
        -> Result<Conversation, StoreError>;

    /// The user's conversations, newest first (by creation).
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for a bad limit or cursor.
    async fn list_conversations(
        &self,
        user: &UserId,
        options: ListOptions,
    ) -> Result<Page<Conversation>, StoreError>;

    /// Changes a conversation's title, system prompt or metadata.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user has no such conversation.
    async fn update_conversation(
        &self,
        user: &UserId,
        id: ChatId,
        update: ConversationUpdate,
    ) -> Result<Conversation, StoreError>;

    /// Deletes a conversation and all its messages.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user has no such conversation.
    async fn delete_conversation(&self, user: &UserId, id: ChatId) -> Result<(), StoreError>;

    /// Appends messages atomically, assigning the next sequence numbers.
    ///
    /// Idempotent on message ids: when every id is stored already in this conversation,
    /// nothing is written and the stored messages come back with
    /// [`Appended::already_stored`]. When only some are, or an id is used elsewhere, it is
    /// [`StoreError::Conflict`] and nothing is written.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an [`AppendTarget::Existing`] conversation the user
    /// does not have; [`StoreError::InvalidInput`] for an empty request.
    async fn append(&self, user: &UserId, request: AppendRequest) -> Result<Appended, StoreError>;

    /// The last `limit` messages of a conversation, oldest first: the context window.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user has no such conversation.
    async fn recent_messages(
        &self,
        user: &UserId,
        chat_id: ChatId,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;

    /// A conversation's messages, oldest first.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user has no such conversation;
    /// [`StoreError::InvalidInput`] for a bad limit or cursor.
    async fn list_messages(
        &self,
        user: &UserId,
        chat_id: ChatId,
        options: ListOptions,
    ) -> Result<Page<Message>, StoreError>;

    /// One message.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user has no such message.
    async fn get_message(&self, user: &UserId, id: MessageId) -> Result<Message, StoreError>;

    /// Edits a message's text or metadata; its place in the conversation stays.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user has no such message.
    async fn update_message(
        &self,
        user: &UserId,
        id: MessageId,
        update: MessageUpdate,
    ) -> Result<Message, StoreError>;

    /// Deletes one message.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user has no such message.
    async fn delete_message(&self, user: &UserId, id: MessageId) -> Result<(), StoreError>;

    /// The user's conversation and message counts and token usage.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend does not answer.
    async fn usage(&self, user: &UserId) -> Result<UsageTotals, StoreError>;
}
