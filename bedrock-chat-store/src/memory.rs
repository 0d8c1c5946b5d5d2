//! [`InMemoryHistoryStore`]: everything in process memory, nothing persisted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use bedrock_chat_core::context::ContextMessage;
use bedrock_chat_core::store::{
    check_usage_days, AppendRequest, AppendTarget, Appended, Cursor, ListOptions, MessageRange,
    Page,
};
use bedrock_chat_core::{
    ChatId, Clock, Conversation, ConversationUpdate, DailyUsage, HistoryStore, Message, MessageId,
    MessageUpdate, NewConversation, NewMessage, Resource, StoreError, SystemClock, Timestamp,
    Usage, UsageTotals, UserId,
};
use chrono::NaiveDate;

const BACKEND: &str = "memory";

/// A [`HistoryStore`] in process memory: for tests, demos, and short-lived chats (seed
/// 004's in-memory conversation). Everything is lost when the process ends, and it is not
/// shared between processes; use a persistent backend to scale out.
///
/// Cloning gives another handle to the same data.
///
/// ```
/// use bedrock_chat_core::{HistoryStore, NewConversation, UserId};
/// use bedrock_chat_store::InMemoryHistoryStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = InMemoryHistoryStore::new();
/// let alice = UserId::new("alice")?;
/// let chat = store.create_conversation(&alice, NewConversation::new("Trip plans")).await?;
/// assert_eq!(store.get_conversation(&alice, chat.id).await?.title, "Trip plans");
/// // Nobody else can see it.
/// let bob = UserId::new("bob")?;
/// assert!(store.get_conversation(&bob, chat.id).await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct InMemoryHistoryStore {
    state: Arc<RwLock<State>>,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, Default)]
struct State {
    conversations: HashMap<ChatId, Entry>,
    /// Each user's conversations in listing order: `(updated_at, id)` ascending, read
    /// backwards for newest first by last activity.
    by_user: HashMap<UserId, BTreeSet<(Timestamp, ChatId)>>,
    /// Where each of a user's messages is: its conversation and sequence number. Message
    /// ids are scoped per user.
    message_index: HashMap<UserId, HashMap<MessageId, (ChatId, u64)>>,
    /// Each user's usage ledger; deleting history does not touch it.
    ledgers: HashMap<UserId, Ledger>,
}

#[derive(Debug, Default)]
struct Ledger {
    total: Usage,
    calls: u64,
    days: BTreeMap<NaiveDate, (Usage, u64)>,
}

#[derive(Debug)]
struct Entry {
    conversation: Conversation,
    messages: BTreeMap<u64, Message>,
    last_seq: u64,
}

impl Entry {
    /// The last `limit` messages, oldest first, each as `copy` makes it.
    fn newest<T>(&self, limit: u32, copy: impl FnMut(&Message) -> T) -> Vec<T> {
        let mut messages: Vec<T> = self
            .messages
            .values()
            .rev()
            .take(limit as usize)
            .map(copy)
            .collect();
        messages.reverse();
        messages
    }
}

impl State {
    /// The user's conversation, or NotFound (also when it is someone else's).
    fn entry(&self, user: &UserId, id: ChatId) -> Result<&Entry, StoreError> {
        self.conversations
            .get(&id)
            .filter(|e| &e.conversation.user_id == user)
            .ok_or(StoreError::not_found(Resource::Conversation))
    }

    fn entry_mut(&mut self, user: &UserId, id: ChatId) -> Result<&mut Entry, StoreError> {
        self.conversations
            .get_mut(&id)
            .filter(|e| &e.conversation.user_id == user)
            .ok_or(StoreError::not_found(Resource::Conversation))
    }

    /// The conversation and sequence number of the user's message `id`.
    fn locate(&self, user: &UserId, id: MessageId) -> Result<(ChatId, u64), StoreError> {
        let not_found = || StoreError::not_found(Resource::Message);
        let (chat_id, seq) = self.message(user, id).ok_or_else(not_found)?;
        self.entry(user, chat_id).map_err(|_| not_found())?;
        Ok((chat_id, seq))
    }

    fn message(&self, user: &UserId, id: MessageId) -> Option<(ChatId, u64)> {
        self.message_index.get(user)?.get(&id).copied()
    }

    fn unindex_message(&mut self, user: &UserId, id: MessageId) {
        if let Some(ids) = self.message_index.get_mut(user) {
            ids.remove(&id);
            if ids.is_empty() {
                self.message_index.remove(user);
            }
        }
    }

    /// Sets the conversation's `updated_at` to `now` and moves it in the listing.
    fn touch(&mut self, user: &UserId, id: ChatId, now: Timestamp) -> Result<(), StoreError> {
        let conversation = &mut self.entry_mut(user, id)?.conversation;
        let before = conversation.updated_at;
        conversation.updated_at = now;
        if let Some(keys) = self.by_user.get_mut(user) {
            keys.remove(&(before, id));
            keys.insert((now, id));
        }
        Ok(())
    }

    fn insert_conversation(
        &mut self,
        user: &UserId,
        new: NewConversation,
        now: Timestamp,
    ) -> Conversation {
        let conversation = Conversation {
            id: new.id,
            user_id: user.clone(),
            title: new.title,
            system_prompt: new.system_prompt,
            metadata: new.metadata,
            message_count: 0,
            created_at: now,
            updated_at: now,
        };
        self.by_user
            .entry(user.clone())
            .or_default()
            .insert((now, new.id));
        self.conversations.insert(
            new.id,
            Entry {
                conversation: conversation.clone(),
                messages: BTreeMap::new(),
                last_seq: 0,
            },
        );
        conversation
    }
}

impl Default for InMemoryHistoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryHistoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store that stamps times from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Arc::new(RwLock::new(State::default())),
            clock,
        }
    }

    // A panic while the lock is held cannot leave the maps half-changed (every write
    // checks first, then changes), so a poisoned lock is still safe to use.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn stored(chat_id: ChatId, seq: u64, new: NewMessage, now: Timestamp) -> Message {
    Message {
        id: new.id,
        chat_id,
        seq,
        role: new.role,
        content: new.content,
        parts: new.parts,
        reply_to: new.reply_to,
        model: new.model,
        usage: new.usage,
        metadata: new.metadata,
        created_at: now,
        updated_at: now,
    }
}

#[async_trait]
impl HistoryStore for InMemoryHistoryStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn create_conversation(
        &self,
        user: &UserId,
        conversation: NewConversation,
    ) -> Result<Conversation, StoreError> {
        let now = self.clock.now();
        let mut state = self.write();
        if state.conversations.contains_key(&conversation.id) {
            return Err(StoreError::Conflict {
                message: format!("conversation id {} is taken", conversation.id),
            });
        }
        Ok(state.insert_conversation(user, conversation, now))
    }

    async fn get_conversation(
        &self,
        user: &UserId,
        id: ChatId,
    ) -> Result<Conversation, StoreError> {
        Ok(self.read().entry(user, id)?.conversation.clone())
    }

    async fn list_conversations(
        &self,
        user: &UserId,
        options: ListOptions,
    ) -> Result<Page<Conversation>, StoreError> {
        let after = options.conversations_before()?;
        let state = self.read();
        let Some(keys) = state.by_user.get(user) else {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        };
        let limit = options.limit as usize;
        let newest_first: Box<dyn Iterator<Item = &(Timestamp, ChatId)>> = match after {
            Some(position) => Box::new(keys.range(..position).rev()),
            None => Box::new(keys.iter().rev()),
        };
        let items: Vec<Conversation> = newest_first
            .take(limit + 1)
            .filter_map(|(_, id)| state.conversations.get(id))
            .map(|e| e.conversation.clone())
            .collect();
        Ok(Page::from_overfetched(
            items,
            options.limit,
            Cursor::after_conversation,
        ))
    }

    async fn update_conversation(
        &self,
        user: &UserId,
        id: ChatId,
        update: ConversationUpdate,
    ) -> Result<Conversation, StoreError> {
        let now = self.clock.now();
        let mut state = self.write();
        let conversation = &mut state.entry_mut(user, id)?.conversation;
        if let Some(title) = update.title {
            conversation.title = title;
        }
        if let Some(prompt) = update.system_prompt {
            conversation.system_prompt = prompt;
        }
        if let Some(metadata) = update.metadata {
            conversation.metadata = metadata;
        }
        state.touch(user, id, now)?;
        Ok(state.entry(user, id)?.conversation.clone())
    }

    async fn delete_conversation(&self, user: &UserId, id: ChatId) -> Result<(), StoreError> {
        let mut state = self.write();
        let updated_at = state.entry(user, id)?.conversation.updated_at;
        if let Some(entry) = state.conversations.remove(&id) {
            for message in entry.messages.values() {
                state.unindex_message(user, message.id);
            }
        }
        if let Some(keys) = state.by_user.get_mut(user) {
            keys.remove(&(updated_at, id));
            if keys.is_empty() {
                state.by_user.remove(user);
            }
        }
        Ok(())
    }

    async fn append(&self, user: &UserId, request: AppendRequest) -> Result<Appended, StoreError> {
        request.validate()?;
        let chat_id = request.chat_id();
        let now = self.clock.now();
        let mut state = self.write();

        // Check everything before changing anything: the append is all or nothing.
        let exists = match state.conversations.get(&chat_id) {
            Some(e) if &e.conversation.user_id == user => true,
            Some(_) => {
                return Err(match request.target {
                    AppendTarget::Existing(_) => StoreError::not_found(Resource::Conversation),
                    AppendTarget::CreateIfMissing(_) => StoreError::Conflict {
                        message: format!("conversation id {chat_id} is taken"),
                    },
                })
            }
            None => false,
        };
        if !exists && matches!(request.target, AppendTarget::Existing(_)) {
            return Err(StoreError::not_found(Resource::Conversation));
        }
        let known: Vec<Option<(ChatId, u64)>> = request
            .messages
            .iter()
            .map(|m| state.message(user, m.id))
            .collect();
        if known
            .iter()
            .all(|k| matches!(k, Some((c, _)) if *c == chat_id))
        {
            let entry = state.entry(user, chat_id)?;
            let messages = known
                .iter()
                .flatten()
                .filter_map(|(_, seq)| entry.messages.get(seq).cloned())
                .collect();
            return Ok(Appended {
                messages,
                already_stored: true,
            });
        }
        if known.iter().any(Option::is_some) {
            return Err(StoreError::Conflict {
                message: "some of these message ids are stored already".into(),
            });
        }

        if let AppendTarget::CreateIfMissing(new) = request.target {
            if !exists {
                state.insert_conversation(user, new, now);
            }
        }
        let state = &mut *state;
        let entry = state.entry_mut(user, chat_id)?;
        let mut messages = Vec::with_capacity(request.messages.len());
        for new in request.messages {
            entry.last_seq += 1;
            let message = stored(chat_id, entry.last_seq, new, now);
            entry.messages.insert(message.seq, message.clone());
            messages.push(message);
        }
        entry.conversation.message_count = entry.messages.len() as u64;
        state.touch(user, chat_id, now)?;
        let index = state.message_index.entry(user.clone()).or_default();
        for message in &messages {
            index.insert(message.id, (chat_id, message.seq));
        }
        Ok(Appended {
            messages,
            already_stored: false,
        })
    }

    async fn recent_messages(
        &self,
        user: &UserId,
        chat_id: ChatId,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        Ok(self
            .read()
            .entry(user, chat_id)?
            .newest(limit, Message::clone))
    }

    async fn recent_context(
        &self,
        user: &UserId,
        chat_id: ChatId,
        limit: u32,
    ) -> Result<Vec<ContextMessage>, StoreError> {
        // Only what the context window reads is copied: no ids, model, usage, metadata.
        Ok(self
            .read()
            .entry(user, chat_id)?
            .newest(limit, ContextMessage::of))
    }

    async fn list_messages(
        &self,
        user: &UserId,
        chat_id: ChatId,
        options: ListOptions,
    ) -> Result<Page<Message>, StoreError> {
        let range = options.message_range()?;
        let state = self.read();
        let entry = state.entry(user, chat_id)?;
        let take = options.limit as usize + 1;
        Ok(match range {
            MessageRange::After(after) => {
                let items = entry
                    .messages
                    .range(after.saturating_add(1)..)
                    .take(take)
                    .map(|(_, m)| m.clone())
                    .collect();
                Page::from_overfetched(items, options.limit, |m| Cursor::after_seq(m.seq))
            }
            MessageRange::Before(before) => {
                let items = entry
                    .messages
                    .range(..before.unwrap_or(u64::MAX))
                    .rev()
                    .take(take)
                    .map(|(_, m)| m.clone())
                    .collect();
                Page::from_overfetched(items, options.limit, |m| Cursor::before_seq(m.seq))
            }
        })
    }

    async fn get_message(&self, user: &UserId, id: MessageId) -> Result<Message, StoreError> {
        let state = self.read();
        let (chat_id, seq) = state.locate(user, id)?;
        state
            .entry(user, chat_id)?
            .messages
            .get(&seq)
            .cloned()
            .ok_or(StoreError::not_found(Resource::Message))
    }

    async fn update_message(
        &self,
        user: &UserId,
        id: MessageId,
        update: MessageUpdate,
    ) -> Result<Message, StoreError> {
        let now = self.clock.now();
        let mut state = self.write();
        let (chat_id, seq) = state.locate(user, id)?;
        let entry = state.entry_mut(user, chat_id)?;
        let message = entry
            .messages
            .get_mut(&seq)
            .ok_or(StoreError::not_found(Resource::Message))?;
        if let Some(content) = update.content {
            if !message.parts.is_empty() {
                bedrock_chat_core::parts::replace_text(&mut message.parts, &content);
            }
            message.content = content;
        }
        if let Some(metadata) = update.metadata {
            message.metadata = metadata;
        }
        message.updated_at = now;
        let message = message.clone();
        state.touch(user, chat_id, now)?;
        Ok(message)
    }

    async fn delete_message(&self, user: &UserId, id: MessageId) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut state = self.write();
        let (chat_id, seq) = state.locate(user, id)?;
        let entry = state.entry_mut(user, chat_id)?;
        entry.messages.remove(&seq);
        entry.conversation.message_count = entry.messages.len() as u64;
        state.touch(user, chat_id, now)?;
        state.unindex_message(user, id);
        Ok(())
    }

    async fn usage(&self, user: &UserId) -> Result<UsageTotals, StoreError> {
        let state = self.read();
        let mut totals = UsageTotals::default();
        for (_, id) in state.by_user.get(user).into_iter().flatten() {
            let Some(entry) = state.conversations.get(id) else {
                continue;
            };
            totals.conversations += 1;
            totals.messages += entry.messages.len() as u64;
        }
        if let Some(ledger) = state.ledgers.get(user) {
            totals.usage = ledger.total;
            totals.calls = ledger.calls;
        }
        Ok(totals)
    }

    async fn record_usage(
        &self,
        user: &UserId,
        at: Timestamp,
        usage: Usage,
    ) -> Result<(), StoreError> {
        let mut state = self.write();
        let ledger = state.ledgers.entry(user.clone()).or_default();
        ledger.total = ledger.total.saturating_add(usage);
        ledger.calls = ledger.calls.saturating_add(1);
        let (day_usage, day_calls) = ledger.days.entry(at.date_naive()).or_default();
        *day_usage = day_usage.saturating_add(usage);
        *day_calls = day_calls.saturating_add(1);
        Ok(())
    }

    async fn daily_usage(
        &self,
        user: &UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        check_usage_days(from, to)?;
        let state = self.read();
        let Some(ledger) = state.ledgers.get(user) else {
            return Ok(Vec::new());
        };
        Ok(ledger
            .days
            .range(from..=to)
            .map(|(day, (usage, calls))| DailyUsage {
                day: *day,
                usage: *usage,
                calls: *calls,
            })
            .collect())
    }
}
