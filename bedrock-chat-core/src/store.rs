//! The [`HistoryStore`] trait: conversations and their messages, scoped by user.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{NaiveDate, TimeZone, Utc};

use crate::context::ContextMessage;
use crate::error::{InvalidInput, StoreError};
use crate::ids::{ChatId, MessageId, UserId};
use crate::types::{
    Conversation, ConversationUpdate, DailyUsage, Message, MessageUpdate, NewConversation,
    NewMessage, Timestamp, Usage, UsageTotals,
};

/// The largest page a list call returns.
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// The longest range of days [`HistoryStore::daily_usage`] answers for, both ends counted.
pub const MAX_USAGE_DAYS: i64 = 366;

/// The order of a message listing. Conversation listings ignore it: they are always newest
/// first, by last activity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageOrder {
    /// Ascending sequence numbers: read a conversation from the start, paging forwards
    /// with [`Cursor::after_seq`].
    #[default]
    OldestFirst,
    /// Descending sequence numbers: load the latest page, then scroll up with
    /// [`Cursor::before_seq`].
    NewestFirst,
}

/// The part of a conversation a message listing reads, decoded from [`ListOptions`] by
/// [`ListOptions::message_range`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageRange {
    /// Oldest first, the messages with a sequence number above this one (0: from the start).
    After(u64),
    /// Newest first, the messages with a sequence number below this one (`None`: from the
    /// newest).
    Before(Option<u64>),
}

/// How many items a list call returns, where it starts, and (for messages) in which order.
///
/// ```
/// use bedrock_chat_core::store::{ListOptions, MessageRange};
/// use bedrock_chat_core::Cursor;
///
/// // A chat app: the latest 50 messages, then the 50 before the oldest one shown.
/// assert_eq!(ListOptions::latest(50).message_range()?, MessageRange::Before(None));
/// let older = ListOptions::before(50, Cursor::before_seq(51));
/// assert_eq!(older.message_range()?, MessageRange::Before(Some(51)));
/// // Reading from the start.
/// assert_eq!(ListOptions::first(50).message_range()?, MessageRange::After(0));
/// # Ok::<(), bedrock_chat_core::InvalidInput>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListOptions {
    /// At most this many items, 1 to [`MAX_PAGE_LIMIT`].
    pub limit: u32,
    /// Where the previous page ended; `None` for the first page.
    pub cursor: Option<Cursor>,
    /// The order of a message listing; conversation listings ignore it.
    pub order: MessageOrder,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self::first(20)
    }
}

impl ListOptions {
    /// The first page of `limit` items (messages oldest first).
    pub fn first(limit: u32) -> Self {
        Self {
            limit,
            cursor: None,
            order: MessageOrder::OldestFirst,
        }
    }

    /// The page after `cursor`: a cursor from a conversation listing, or from an
    /// oldest-first message listing.
    pub fn after(limit: u32, cursor: Cursor) -> Self {
        Self::first(limit).with_cursor(Some(cursor))
    }

    /// The first page of messages newest first: the latest `limit` messages.
    pub fn latest(limit: u32) -> Self {
        Self::first(limit).with_order(MessageOrder::NewestFirst)
    }

    /// The page of messages, newest first, before `cursor` (a newest-first listing's
    /// [`Page::next_cursor`]).
    pub fn before(limit: u32, cursor: Cursor) -> Self {
        Self::latest(limit).with_cursor(Some(cursor))
    }

    /// The same options with the message order `order`.
    pub fn with_order(mut self, order: MessageOrder) -> Self {
        self.order = order;
        self
    }

    /// The same options starting at `cursor` (`None`: the first page); for paging loops
    /// that keep the order and limit.
    pub fn with_cursor(mut self, cursor: Option<Cursor>) -> Self {
        self.cursor = cursor;
        self
    }

    /// Checks the limit, then decodes the cursor of a conversation listing: the
    /// `(updated_at, id)` the page starts before, `None` for the first page.
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

    /// Checks the limit, then decodes the cursor of a message listing for its order.
    ///
    /// # Errors
    /// [`InvalidInput`] for a bad limit, or a cursor that is not a message cursor of this
    /// order (an after-cursor in a newest-first listing, or the reverse).
    pub fn message_range(&self) -> Result<MessageRange, InvalidInput> {
        self.validate()?;
        let cursor = self.cursor.as_ref();
        match self.order {
            MessageOrder::OldestFirst => Ok(MessageRange::After(
                cursor.map(Cursor::seq_position).transpose()?.unwrap_or(0),
            )),
            MessageOrder::NewestFirst => Ok(MessageRange::Before(
                cursor.map(Cursor::before_seq_position).transpose()?,
            )),
        }
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

/// Checks the day range of [`HistoryStore::daily_usage`]: `from` not after `to`, and at
/// most [`MAX_USAGE_DAYS`] days, both ends counted.
///
/// ```
/// use bedrock_chat_core::store::check_usage_days;
/// use chrono::NaiveDate;
///
/// let day = |m, d| NaiveDate::from_ymd_opt(2024, m, d).unwrap_or_default();
/// assert!(check_usage_days(day(1, 1), day(12, 31)).is_ok()); // 366 days
/// assert!(check_usage_days(day(3, 2), day(3, 1)).is_err());
/// ```
///
/// # Errors
/// [`InvalidInput`] on `from` or `to` otherwise.
pub fn check_usage_days(from: NaiveDate, to: NaiveDate) -> Result<(), InvalidInput> {
    if from > to {
        return Err(InvalidInput::new("from", "must not be after `to`"));
    }
    if (to - from).num_days() >= MAX_USAGE_DAYS {
        return Err(InvalidInput::new(
            "to",
            format!("must be within {MAX_USAGE_DAYS} days of `from`"),
        ));
    }
    Ok(())
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

    /// The position just after `conversation` in a listing by last activity, newest
    /// first: its `(updated_at, id)`.
    pub fn after_conversation(conversation: &Conversation) -> Self {
        Self(format!(
            "c1.{}.{}",
            conversation.updated_at.timestamp_micros(),
            conversation.id
        ))
    }

    /// Decodes a conversation cursor into `(updated_at, id)`.
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
            .ok_or_else(|| InvalidInput::new("cursor", "is not an oldest-first message cursor"))
    }

    /// The position just before the message with sequence number `seq`, in a
    /// newest-first message listing.
    pub fn before_seq(seq: u64) -> Self {
        Self(format!("b1.{seq}"))
    }

    /// Decodes a newest-first message cursor into the sequence number it precedes.
    ///
    /// # Errors
    /// [`InvalidInput`] on `cursor` when it was not made by [`before_seq`](Self::before_seq).
    pub fn before_seq_position(&self) -> Result<u64, InvalidInput> {
        self.0
            .strip_prefix("b1.")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| InvalidInput::new("cursor", "is not a newest-first message cursor"))
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
/// someone else is [`StoreError::NotFound`], exactly as one that does not exist. Message
/// ids are scoped per user too: two users may each store a message with the same
/// [`MessageId`], and neither ever sees or conflicts with the other's.
///
/// Token usage is kept apart from the history, as a ledger per user and UTC day
/// ([`record_usage`](Self::record_usage)), so deleting conversations or messages never
/// changes what [`usage`](Self::usage) reports as spent.
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

    /// The user's conversations by last activity, newest first: descending `updated_at`
    /// (which appending a message moves forward), ties by descending id.
    /// [`ListOptions::order`] does not apply.
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
    /// Idempotent on message ids, per user: when every id is stored already in this
    /// conversation, nothing is written and the stored messages come back with
    /// [`Appended::already_stored`]. When only some are, or an id is used in another of
    /// the user's conversations, it is [`StoreError::Conflict`] and nothing is written.
    /// Another user's ids play no part. Moves the conversation's `updated_at` forward.
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

    /// The last `limit` messages of a conversation, oldest first, as the context window
    /// needs them ([`ContextMessage`]: place, role, text, parts, exact token count). The
    /// default reads [`recent_messages`](Self::recent_messages); a store that can read
    /// less (the in-memory store copies only those fields) overrides it. Both must agree.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user has no such conversation.
    async fn recent_context(
        &self,
        user: &UserId,
        chat_id: ChatId,
        limit: u32,
    ) -> Result<Vec<ContextMessage>, StoreError> {
        let messages = self.recent_messages(user, chat_id, limit).await?;
        Ok(messages.into_iter().map(ContextMessage::from).collect())
    }

    /// A page of a conversation's messages: oldest first (ascending `seq`, paging forwards
    /// with [`Cursor::after_seq`]) or, with [`MessageOrder::NewestFirst`], newest first
    /// (descending `seq`, paging back with [`Cursor::before_seq`]); see
    /// [`ListOptions::message_range`].
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user has no such conversation;
    /// [`StoreError::InvalidInput`] for a bad limit, or a cursor that is not a message
    /// cursor of the listing's order.
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

    /// The user's conversation and message counts, and their all-time token usage and
    /// model calls from the usage ledger (zero when nothing was recorded).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend does not answer.
    async fn usage(&self, user: &UserId) -> Result<UsageTotals, StoreError>;

    /// Records one model call that used `usage`: adds it, and one call, to the user's
    /// bucket for `at`'s UTC day and to their all-time total, atomically. Deleting
    /// history never changes what was recorded.
    ///
    /// # Errors
    /// [`StoreError::Unsupported`] from backends without a usage ledger (the default);
    /// [`StoreError::Unavailable`] when the backend does not answer.
    async fn record_usage(
        &self,
        user: &UserId,
        at: Timestamp,
        usage: Usage,
    ) -> Result<(), StoreError> {
        let _ = (user, at, usage);
        Err(StoreError::Unsupported {
            backend: self.backend(),
            operation: "record_usage",
        })
    }

    /// The user's recorded usage per UTC day in `[from, to]`, oldest first; days without
    /// a recorded call are left out.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] when `from` is after `to` or the range is longer than
    /// [`MAX_USAGE_DAYS`] (see [`check_usage_days`]); [`StoreError::Unsupported`] from
    /// backends without a usage ledger (the default).
    async fn daily_usage(
        &self,
        user: &UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        let _ = (user, from, to);
        Err(StoreError::Unsupported {
            backend: self.backend(),
            operation: "daily_usage",
        })
    }
}
