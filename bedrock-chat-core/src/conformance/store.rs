//! The [`HistoryStore`] conformance suite.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;

use super::random_user;
use crate::store::{AppendRequest, Cursor, HistoryStore, ListOptions};
use crate::{
    ChatId, Conversation, ConversationUpdate, Message, MessageId, MessageUpdate, Metadata,
    NewConversation, NewMessage, Role, StoreError, Usage,
};

/// What a backend can hold, so that a case checks the right behaviour for it instead of
/// being skipped.
#[derive(Clone, Copy, Debug)]
pub struct StoreCapabilities {
    /// Whether text may contain NUL (`\0`). PostgreSQL's `text` cannot: such a backend
    /// must refuse it with `InvalidInput` and write nothing.
    pub nul_in_text: bool,
}

impl Default for StoreCapabilities {
    fn default() -> Self {
        Self { nul_in_text: true }
    }
}

/// A backend under test, and what it can hold.
#[derive(Clone)]
pub struct StoreUnderTest {
    /// The store.
    pub store: Arc<dyn HistoryStore>,
    /// What it can hold.
    pub capabilities: StoreCapabilities,
}

impl StoreUnderTest {
    /// Wraps a store.
    pub fn new(store: impl HistoryStore, capabilities: StoreCapabilities) -> Self {
        Self {
            store: Arc::new(store),
            capabilities,
        }
    }
}

/// Expands into one `#[tokio::test]` per store conformance case, each calling
/// `$make().await` for a [`StoreUnderTest`].
#[macro_export]
macro_rules! history_store_conformance {
    ($make:path) => {
        $crate::__conformance_cases!(store, $make;
            ping_answers,
            create_then_get_returns_the_same_conversation,
            create_with_a_taken_id_conflicts,
            list_conversations_is_newest_first,
            conversation_pages_return_each_item_once_while_new_items_arrive,
            update_conversation_changes_only_the_given_fields,
            delete_conversation_removes_it_and_its_messages,
            append_then_read_back_in_order,
            append_can_create_the_conversation_in_the_same_write,
            append_same_message_ids_twice_stores_once,
            append_with_some_known_ids_conflicts_and_writes_nothing,
            append_rejects_empty_and_repeated_ids,
            append_to_a_missing_conversation_is_not_found,
            concurrent_appends_get_unique_gap_free_sequence_numbers,
            message_pages_return_each_item_once_while_new_items_arrive,
            recent_messages_are_the_last_n_oldest_first,
            edit_message_changes_its_text_and_keeps_its_place,
            delete_message_removes_only_that_message,
            another_users_conversation_is_not_found_for_every_operation,
            large_mixed_unicode_round_trips_byte_for_byte,
            nul_characters_round_trip_or_are_refused,
            usage_totals_sum_the_replies,
            bad_limits_and_cursors_are_refused,
        );
    };
}

/// Expands a list of case names into tests; used by the conformance macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($suite:ident, $make:path; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance::$suite::$case(&$make).await;
            }
        )*
    };
}

/// Runs a case against the store `$make().await` makes.
#[doc(hidden)]
pub trait MakeStore {
    /// Makes the store under test.
    fn make(&self) -> futures::future::BoxFuture<'static, StoreUnderTest>;
}

impl<F, Fut> MakeStore for F
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = StoreUnderTest> + Send + 'static,
{
    fn make(&self) -> futures::future::BoxFuture<'static, StoreUnderTest> {
        Box::pin(self())
    }
}

fn exchange(question: &str, answer: &str, usage: Usage) -> Vec<NewMessage> {
    let q = NewMessage::user(question);
    let a = NewMessage::assistant(answer)
        .replying_to(q.id)
        .with_model("conformance-model")
        .with_usage(usage);
    vec![q, a]
}

async fn conversation(store: &dyn HistoryStore, user: &crate::UserId) -> Conversation {
    store
        .create_conversation(user, NewConversation::new("conformance"))
        .await
        .expect("create a conversation")
}

async fn append(
    store: &dyn HistoryStore,
    user: &crate::UserId,
    chat: ChatId,
    messages: Vec<NewMessage>,
) -> Vec<Message> {
    store
        .append(user, AppendRequest::existing(chat, messages))
        .await
        .expect("append")
        .messages
}

async fn all_messages(
    store: &dyn HistoryStore,
    user: &crate::UserId,
    chat: ChatId,
) -> Vec<Message> {
    store
        .list_messages(user, chat, ListOptions::first(1000))
        .await
        .expect("list messages")
        .items
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::InvalidInput(_)) => {}
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    }
}

fn metadata(value: serde_json::Value) -> Metadata {
    match value {
        serde_json::Value::Object(map) => map,
        _ => Metadata::new(),
    }
}

/// The backend answers a health check.
pub async fn ping_answers(make: &impl MakeStore) {
    let t = make.make().await;
    t.store.ping().await.expect("ping");
}

/// A created conversation reads back with every field as given.
pub async fn create_then_get_returns_the_same_conversation(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let new = NewConversation::new("Trip to Lisbon ✈️")
        .with_system_prompt("You are a travel agent.")
        .with_metadata(metadata(json!({"source": "conformance", "tags": [1, 2]})));
    let created = t
        .store
        .create_conversation(&user, new.clone())
        .await
        .expect("create");
    assert_eq!(created.id, new.id);
    assert_eq!(created.user_id, user);
    assert_eq!(created.title, new.title);
    assert_eq!(created.system_prompt, new.system_prompt);
    assert_eq!(created.metadata, new.metadata);
    assert_eq!(created.message_count, 0);
    let read = t.store.get_conversation(&user, new.id).await.expect("get");
    assert_eq!(read, created);
}

/// A second create with the same id is a conflict, for the owner and for anyone else.
pub async fn create_with_a_taken_id_conflicts(make: &impl MakeStore) {
    let t = make.make().await;
    let (alice, bob) = (random_user(), random_user());
    let new = NewConversation::new("first");
    t.store
        .create_conversation(&alice, new.clone())
        .await
        .expect("create");
    for user in [&alice, &bob] {
        match t.store.create_conversation(user, new.clone()).await {
            Err(StoreError::Conflict { .. }) => {}
            other => panic!("expected Conflict, got {other:?}"),
        }
    }
    assert_eq!(
        t.store
            .get_conversation(&alice, new.id)
            .await
            .expect("get")
            .title,
        "first"
    );
}

/// Conversations list newest first.
pub async fn list_conversations_is_newest_first(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            t.store
                .create_conversation(&user, NewConversation::new(format!("c{i}")))
                .await
                .expect("create")
                .id,
        );
    }
    let page = t
        .store
        .list_conversations(&user, ListOptions::first(10))
        .await
        .expect("list");
    let listed: Vec<ChatId> = page.items.iter().map(|c| c.id).collect();
    ids.reverse();
    assert_eq!(listed, ids);
    assert_eq!(page.next_cursor, None);
    let empty = t
        .store
        .list_conversations(&random_user(), ListOptions::first(10))
        .await;
    assert!(empty.expect("list for a new user").items.is_empty());
}

/// Keyset pagination: conversations created while paging do not shift later pages.
pub async fn conversation_pages_return_each_item_once_while_new_items_arrive(
    make: &impl MakeStore,
) {
    let t = make.make().await;
    let user = random_user();
    let mut originals = HashSet::new();
    for i in 0..25 {
        let c = t
            .store
            .create_conversation(&user, NewConversation::new(format!("c{i}")))
            .await;
        originals.insert(c.expect("create").id);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    for page_number in 0.. {
        let options = ListOptions {
            limit: 10,
            cursor: cursor.clone(),
        };
        let page = t
            .store
            .list_conversations(&user, options)
            .await
            .expect("page");
        seen.extend(page.items.iter().map(|c| c.id));
        // New conversations arrive between pages.
        for i in 0..3 {
            let c = NewConversation::new(format!("late {page_number}-{i}"));
            t.store
                .create_conversation(&user, c)
                .await
                .expect("create late");
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(page_number < 10, "pagination does not end");
    }
    let unique: HashSet<ChatId> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a conversation was listed twice");
    assert_eq!(
        unique, originals,
        "pages must hold exactly the conversations there at the start"
    );
}

/// An update changes what it names and nothing else.
pub async fn update_conversation_changes_only_the_given_fields(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let new = NewConversation::new("old title")
        .with_system_prompt("old prompt")
        .with_metadata(metadata(json!({"a": 1})));
    let created = t
        .store
        .create_conversation(&user, new)
        .await
        .expect("create");
    let update = ConversationUpdate {
        title: Some("new title".into()),
        ..Default::default()
    };
    let updated = t
        .store
        .update_conversation(&user, created.id, update)
        .await
        .expect("update");
    assert_eq!(updated.title, "new title");
    assert_eq!(updated.system_prompt.as_deref(), Some("old prompt"));
    assert_eq!(updated.metadata, created.metadata);
    assert!(updated.updated_at >= created.updated_at);

    let update = ConversationUpdate {
        system_prompt: Some(None),
        metadata: Some(metadata(json!({"b": [true, null]}))),
        ..Default::default()
    };
    let updated = t
        .store
        .update_conversation(&user, created.id, update)
        .await
        .expect("update");
    assert_eq!(updated.title, "new title");
    assert_eq!(updated.system_prompt, None);
    assert_eq!(updated.metadata, metadata(json!({"b": [true, null]})));
    assert_eq!(
        t.store
            .get_conversation(&user, created.id)
            .await
            .expect("get"),
        updated
    );
}

/// Deleting a conversation deletes its messages too.
pub async fn delete_conversation_removes_it_and_its_messages(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let keep = conversation(&*t.store, &user).await;
    let gone = conversation(&*t.store, &user).await;
    let kept_messages = append(
        &*t.store,
        &user,
        keep.id,
        exchange("k", "k", Usage::new(1, 1)),
    )
    .await;
    let messages = append(
        &*t.store,
        &user,
        gone.id,
        exchange("q", "a", Usage::new(3, 4)),
    )
    .await;
    t.store
        .delete_conversation(&user, gone.id)
        .await
        .expect("delete");
    assert_not_found(
        t.store.get_conversation(&user, gone.id).await,
        "deleted conversation",
    );
    for m in &messages {
        assert_not_found(
            t.store.get_message(&user, m.id).await,
            "message of a deleted conversation",
        );
    }
    assert_not_found(
        t.store
            .list_messages(&user, gone.id, ListOptions::default())
            .await,
        "messages",
    );
    assert_not_found(
        t.store.delete_conversation(&user, gone.id).await,
        "second delete",
    );
    let listed = t
        .store
        .list_conversations(&user, ListOptions::default())
        .await
        .expect("list");
    assert_eq!(
        listed.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![keep.id]
    );
    assert_eq!(all_messages(&*t.store, &user, keep.id).await, kept_messages);
    let usage = t.store.usage(&user).await.expect("usage");
    assert_eq!((usage.conversations, usage.messages), (1, 2));
    assert_eq!(usage.usage, Usage::new(1, 1));
}

/// Appended messages read back in order, with every field, and the conversation follows.
pub async fn append_then_read_back_in_order(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    let first = exchange("What is Rust?", "A language.", Usage::new(12, 3));
    let mut second = exchange("And Bedrock?", "An AWS service.", Usage::new(30, 5));
    second[0].metadata = metadata(json!({"client": "conformance", "n": 2}));
    let stored_first = append(&*t.store, &user, chat.id, first.clone()).await;
    let stored_second = append(&*t.store, &user, chat.id, second.clone()).await;
    let all = all_messages(&*t.store, &user, chat.id).await;
    assert_eq!(all.len(), 4);
    assert_eq!([stored_first, stored_second].concat(), all);
    for (i, (stored, sent)) in all
        .iter()
        .zip(first.iter().chain(second.iter()))
        .enumerate()
    {
        assert_eq!(stored.seq, i as u64 + 1);
        assert_eq!(stored.chat_id, chat.id);
        assert_eq!(stored.id, sent.id);
        assert_eq!(stored.role, sent.role);
        assert_eq!(stored.content, sent.content);
        assert_eq!(stored.reply_to, sent.reply_to);
        assert_eq!(stored.model, sent.model);
        assert_eq!(stored.usage, sent.usage);
        assert_eq!(stored.metadata, sent.metadata);
        assert_eq!(
            t.store.get_message(&user, stored.id).await.expect("get"),
            *stored
        );
    }
    assert_eq!(all[0].role, Role::User);
    assert_eq!(all[1].reply_to, Some(all[0].id));
    let after = t.store.get_conversation(&user, chat.id).await.expect("get");
    assert_eq!(after.message_count, 4);
    assert!(after.updated_at >= chat.updated_at);
}

/// `create_if_missing` creates the conversation with the messages, then appends to it.
pub async fn append_can_create_the_conversation_in_the_same_write(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let new = NewConversation::new("made by append").with_system_prompt("terse");
    let appended = t
        .store
        .append(
            &user,
            AppendRequest::create_if_missing(new.clone(), exchange("q", "a", Usage::new(1, 2))),
        )
        .await
        .expect("append creating");
    assert!(!appended.already_stored);
    assert_eq!(
        appended.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2]
    );
    let chat = t
        .store
        .get_conversation(&user, new.id)
        .await
        .expect("created");
    assert_eq!(
        (chat.title.as_str(), chat.system_prompt.as_deref()),
        ("made by append", Some("terse"))
    );
    assert_eq!(chat.message_count, 2);
    let again = t
        .store
        .append(
            &user,
            AppendRequest::create_if_missing(new.clone(), exchange("q2", "a2", Usage::new(1, 2))),
        )
        .await
        .expect("append to the existing one");
    assert_eq!(
        again.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [3, 4]
    );
    let other = random_user();
    match t
        .store
        .append(
            &other,
            AppendRequest::create_if_missing(new.clone(), exchange("x", "y", Usage::default())),
        )
        .await
    {
        Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {}
        result => panic!("another user's id must not be appended to: {result:?}"),
    }
    assert_eq!(all_messages(&*t.store, &user, new.id).await.len(), 4);
}

/// The message id is the idempotency key: the same append twice stores once.
pub async fn append_same_message_ids_twice_stores_once(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    let messages = exchange("once", "only once", Usage::new(5, 5));
    let first = t
        .store
        .append(&user, AppendRequest::existing(chat.id, messages.clone()))
        .await
        .expect("first");
    let second = t
        .store
        .append(&user, AppendRequest::existing(chat.id, messages))
        .await
        .expect("retry");
    assert!(!first.already_stored);
    assert!(second.already_stored);
    assert_eq!(first.messages, second.messages);
    assert_eq!(all_messages(&*t.store, &user, chat.id).await.len(), 2);
    assert_eq!(
        t.store
            .get_conversation(&user, chat.id)
            .await
            .expect("get")
            .message_count,
        2
    );
}

/// An append whose ids are partly stored already writes nothing.
pub async fn append_with_some_known_ids_conflicts_and_writes_nothing(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    let stored = exchange("q", "a", Usage::new(1, 1));
    append(&*t.store, &user, chat.id, stored.clone()).await;
    let fresh = NewMessage::assistant("never stored");
    let mixed = vec![stored[0].clone(), fresh.clone()];
    match t
        .store
        .append(&user, AppendRequest::existing(chat.id, mixed))
        .await
    {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_not_found(
        t.store.get_message(&user, fresh.id).await,
        "the fresh message",
    );
    // An id stored in another conversation conflicts too.
    let elsewhere = conversation(&*t.store, &user).await;
    let reused = vec![NewMessage::user("new"), stored[1].clone()];
    match t
        .store
        .append(&user, AppendRequest::existing(elsewhere.id, reused.clone()))
        .await
    {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_not_found(
        t.store.get_message(&user, reused[0].id).await,
        "the new message",
    );
    assert_eq!(all_messages(&*t.store, &user, chat.id).await.len(), 2);
    assert!(all_messages(&*t.store, &user, elsewhere.id)
        .await
        .is_empty());
}

/// Empty appends and repeated ids are refused.
pub async fn append_rejects_empty_and_repeated_ids(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    assert_invalid(
        t.store
            .append(&user, AppendRequest::existing(chat.id, vec![]))
            .await,
        "empty append",
    );
    let m = NewMessage::user("twice");
    let twice = vec![m.clone(), m.clone()];
    assert_invalid(
        t.store
            .append(&user, AppendRequest::existing(chat.id, twice))
            .await,
        "repeated id",
    );
    assert!(all_messages(&*t.store, &user, chat.id).await.is_empty());
}

/// Appending to a conversation that does not exist is NotFound and creates nothing.
pub async fn append_to_a_missing_conversation_is_not_found(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let missing = ChatId::new();
    let result = t
        .store
        .append(
            &user,
            AppendRequest::existing(missing, exchange("q", "a", Usage::default())),
        )
        .await;
    assert_not_found(result, "append to a missing conversation");
    assert_not_found(
        t.store.get_conversation(&user, missing).await,
        "the missing conversation",
    );
}

/// 100 concurrent appends of an exchange: sequence numbers 1..=200, no gaps, no repeats,
/// each exchange contiguous.
pub async fn concurrent_appends_get_unique_gap_free_sequence_numbers(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = Arc::clone(&t.store);
            let user = user.clone();
            tokio::spawn(async move {
                let messages = exchange(&format!("q{i}"), &format!("a{i}"), Usage::new(1, 1));
                store
                    .append(&user, AppendRequest::existing(chat.id, messages))
                    .await
            })
        })
        .collect();
    for task in tasks {
        let appended = task.await.expect("task").expect("append");
        let seqs: Vec<u64> = appended.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs.len(), 2);
        assert_eq!(seqs[1], seqs[0] + 1, "an exchange must be contiguous");
    }
    let all = all_messages(&*t.store, &user, chat.id).await;
    let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    let ids: HashSet<MessageId> = all.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 200);
    assert_eq!(
        t.store
            .get_conversation(&user, chat.id)
            .await
            .expect("get")
            .message_count,
        200
    );
}

/// Keyset pagination of messages: each message once, in order, while more arrive.
pub async fn message_pages_return_each_item_once_while_new_items_arrive(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    for i in 0..15 {
        append(
            &*t.store,
            &user,
            chat.id,
            exchange(&format!("q{i}"), &format!("a{i}"), Usage::default()),
        )
        .await;
    }
    let mut seen: Vec<u64> = Vec::new();
    let mut cursor = None;
    for page_number in 0.. {
        let page = t
            .store
            .list_messages(&user, chat.id, ListOptions { limit: 7, cursor })
            .await
            .expect("page");
        assert!(page.items.len() <= 7);
        seen.extend(page.items.iter().map(|m| m.seq));
        if page_number < 2 {
            append(
                &*t.store,
                &user,
                chat.id,
                exchange("late", "late", Usage::default()),
            )
            .await;
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
        assert!(page_number < 20, "pagination does not end");
    }
    assert_eq!(
        seen,
        (1..=34).collect::<Vec<u64>>(),
        "every message once, in order"
    );
}

/// The context window: the newest N messages, oldest first.
pub async fn recent_messages_are_the_last_n_oldest_first(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    for i in 0..5 {
        append(
            &*t.store,
            &user,
            chat.id,
            exchange(&format!("q{i}"), &format!("a{i}"), Usage::default()),
        )
        .await;
    }
    let recent = t
        .store
        .recent_messages(&user, chat.id, 4)
        .await
        .expect("recent");
    assert_eq!(
        recent.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [7, 8, 9, 10]
    );
    assert_eq!(recent[0].content, "q3");
    let all = t
        .store
        .recent_messages(&user, chat.id, 100)
        .await
        .expect("recent");
    assert_eq!(all.len(), 10);
    assert!(t
        .store
        .recent_messages(&user, chat.id, 0)
        .await
        .expect("recent 0")
        .is_empty());
}

/// Editing a message changes its text and metadata, not its place.
pub async fn edit_message_changes_its_text_and_keeps_its_place(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    let stored = append(
        &*t.store,
        &user,
        chat.id,
        exchange("typo", "answer", Usage::new(2, 2)),
    )
    .await;
    let update = MessageUpdate {
        content: Some("fixed".into()),
        metadata: None,
    };
    let edited = t
        .store
        .update_message(&user, stored[0].id, update)
        .await
        .expect("edit");
    assert_eq!(edited.content, "fixed");
    assert_eq!(edited.seq, stored[0].seq);
    assert_eq!(edited.metadata, stored[0].metadata);
    assert!(edited.updated_at >= stored[0].updated_at);
    let update = MessageUpdate {
        content: None,
        metadata: Some(metadata(json!({"edited": true}))),
    };
    let edited = t
        .store
        .update_message(&user, stored[0].id, update)
        .await
        .expect("edit metadata");
    assert_eq!(edited.content, "fixed");
    assert_eq!(edited.metadata, metadata(json!({"edited": true})));
    let all = all_messages(&*t.store, &user, chat.id).await;
    assert_eq!(all[0], edited);
    assert_eq!(all[1], stored[1]);
    assert_not_found(
        t.store
            .update_message(&user, MessageId::new(), MessageUpdate::default())
            .await,
        "editing a missing message",
    );
}

/// Deleting a message removes it alone.
pub async fn delete_message_removes_only_that_message(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    let mut stored = append(
        &*t.store,
        &user,
        chat.id,
        exchange("q1", "a1", Usage::new(1, 1)),
    )
    .await;
    stored.extend(
        append(
            &*t.store,
            &user,
            chat.id,
            exchange("q2", "a2", Usage::new(1, 1)),
        )
        .await,
    );
    t.store
        .delete_message(&user, stored[1].id)
        .await
        .expect("delete");
    assert_not_found(
        t.store.get_message(&user, stored[1].id).await,
        "deleted message",
    );
    assert_not_found(
        t.store.delete_message(&user, stored[1].id).await,
        "second delete",
    );
    let left = all_messages(&*t.store, &user, chat.id).await;
    assert_eq!(
        left,
        vec![stored[0].clone(), stored[2].clone(), stored[3].clone()]
    );
    assert_eq!(
        t.store
            .get_conversation(&user, chat.id)
            .await
            .expect("get")
            .message_count,
        3
    );
    // The next append continues after the highest sequence number ever given.
    let next = append(
        &*t.store,
        &user,
        chat.id,
        exchange("q3", "a3", Usage::default()),
    )
    .await;
    assert_eq!(next[0].seq, 5);
}

/// Another user's conversation and messages behave exactly as if they did not exist, and
/// nothing the other user tries changes them.
pub async fn another_users_conversation_is_not_found_for_every_operation(make: &impl MakeStore) {
    let t = make.make().await;
    let (alice, mallory) = (random_user(), random_user());
    let chat = t
        .store
        .create_conversation(
            &alice,
            NewConversation::new("private").with_system_prompt("secret"),
        )
        .await
        .expect("create");
    let messages = append(
        &*t.store,
        &alice,
        chat.id,
        exchange("my secret", "kept", Usage::new(9, 9)),
    )
    .await;
    let s = &*t.store;
    let m = &mallory;
    assert_not_found(s.get_conversation(m, chat.id).await, "get_conversation");
    let update = ConversationUpdate {
        title: Some("pwned".into()),
        ..Default::default()
    };
    assert_not_found(
        s.update_conversation(m, chat.id, update).await,
        "update_conversation",
    );
    assert_not_found(
        s.delete_conversation(m, chat.id).await,
        "delete_conversation",
    );
    let intrude = AppendRequest::existing(chat.id, exchange("inject", "x", Usage::default()));
    assert_not_found(s.append(m, intrude).await, "append");
    assert_not_found(s.recent_messages(m, chat.id, 10).await, "recent_messages");
    assert_not_found(
        s.list_messages(m, chat.id, ListOptions::default()).await,
        "list_messages",
    );
    for message in &messages {
        assert_not_found(s.get_message(m, message.id).await, "get_message");
        let edit = MessageUpdate {
            content: Some("pwned".into()),
            metadata: None,
        };
        assert_not_found(
            s.update_message(m, message.id, edit).await,
            "update_message",
        );
        assert_not_found(s.delete_message(m, message.id).await, "delete_message");
    }
    // The retry of an append with alice's ids must not reveal or touch them either.
    let replay = AppendRequest::existing(
        chat.id,
        messages
            .iter()
            .map(|m| NewMessage {
                id: m.id,
                role: m.role,
                content: m.content.clone(),
                reply_to: m.reply_to,
                model: m.model.clone(),
                usage: m.usage,
                metadata: m.metadata.clone(),
            })
            .collect(),
    );
    assert_not_found(s.append(m, replay).await, "replayed append");
    assert!(s
        .list_conversations(m, ListOptions::default())
        .await
        .expect("list")
        .items
        .is_empty());
    assert_eq!(s.usage(m).await.expect("usage").conversations, 0);

    let after = s
        .get_conversation(&alice, chat.id)
        .await
        .expect("alice's conversation");
    assert_eq!(after.title, "private");
    assert_eq!(after.system_prompt.as_deref(), Some("secret"));
    assert_eq!(after.message_count, 2);
    assert_eq!(all_messages(s, &alice, chat.id).await, messages);
}

/// 1 MB of mixed text (SQL, JSON and Redis protocol metacharacters, control characters,
/// emoji, CJK, right-to-left, combining marks) round-trips byte for byte.
pub async fn large_mixed_unicode_round_trips_byte_for_byte(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let sample = "Robert'); DROP TABLE messages;-- {\"json\": \"\\\"quoted\\\"\"} *3\r\n$3\r\nSET \
                  \u{1}\u{7}\t\u{1b}[31m ünïcödé 🦀🚀👩‍👩‍👧‍👦 中文字符 العربية עברית e\u{301} \u{200b}\u{feff} $$ \\ % _ ";
    let mut big = String::with_capacity(1 << 20);
    while big.len() < (1 << 20) {
        big.push_str(sample);
    }
    let title: String = sample.chars().take(80).collect();
    let new = NewConversation::new(title.clone())
        .with_system_prompt(sample)
        .with_metadata(metadata(
            json!({"payload": sample, "nested": {"k": [sample]}}),
        ));
    let chat = t
        .store
        .create_conversation(&user, new.clone())
        .await
        .expect("create");
    let messages = vec![
        NewMessage::user(big.clone()).with_metadata(metadata(json!({"echo": sample}))),
        NewMessage::assistant(sample),
    ];
    let stored = append(&*t.store, &user, chat.id, messages.clone()).await;
    let read = t.store.get_message(&user, stored[0].id).await.expect("get");
    assert_eq!(read.content.len(), big.len());
    assert!(
        read.content == big,
        "the 1 MB message must come back byte for byte"
    );
    assert_eq!(read.metadata, messages[0].metadata);
    let listed = all_messages(&*t.store, &user, chat.id).await;
    assert!(listed[0].content == big);
    assert_eq!(listed[1].content, sample);
    let chat = t
        .store
        .get_conversation(&user, chat.id)
        .await
        .expect("get conversation");
    assert_eq!(chat.title, title);
    assert_eq!(chat.system_prompt.as_deref(), Some(sample));
    assert_eq!(chat.metadata, new.metadata);
}

/// NUL characters round-trip where the backend can hold them, and are refused with
/// `InvalidInput`, writing nothing, where it cannot.
pub async fn nul_characters_round_trip_or_are_refused(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    let message = NewMessage::user("before\0after");
    let result = t
        .store
        .append(
            &user,
            AppendRequest::existing(chat.id, vec![message.clone()]),
        )
        .await;
    if t.capabilities.nul_in_text {
        result.expect("append with NUL");
        let read = t.store.get_message(&user, message.id).await.expect("get");
        assert_eq!(read.content, "before\0after");
    } else {
        assert_invalid(result, "a NUL where the backend cannot hold one");
        assert!(all_messages(&*t.store, &user, chat.id).await.is_empty());
    }
}

/// Usage totals count a user's conversations, messages and reply tokens.
pub async fn usage_totals_sum_the_replies(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    conversation(&*t.store, &user).await;
    append(
        &*t.store,
        &user,
        chat.id,
        exchange("q1", "a1", Usage::new(10, 5)),
    )
    .await;
    append(
        &*t.store,
        &user,
        chat.id,
        exchange("q2", "a2", Usage::new(20, 7)),
    )
    .await;
    let totals = t.store.usage(&user).await.expect("usage");
    assert_eq!(totals.conversations, 2);
    assert_eq!(totals.messages, 4);
    assert_eq!(totals.usage, Usage::new(30, 12));
    let other = random_user();
    assert_eq!(
        t.store.usage(&other).await.expect("usage").usage,
        Usage::default()
    );
}

/// Page limits out of range and foreign or garbled cursors are refused.
pub async fn bad_limits_and_cursors_are_refused(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    append(
        &*t.store,
        &user,
        chat.id,
        exchange("q", "a", Usage::default()),
    )
    .await;
    for limit in [0, crate::store::MAX_PAGE_LIMIT + 1] {
        assert_invalid(
            t.store
                .list_conversations(&user, ListOptions::first(limit))
                .await,
            "limit",
        );
        assert_invalid(
            t.store
                .list_messages(&user, chat.id, ListOptions::first(limit))
                .await,
            "limit",
        );
    }
    for garbage in ["", "garbage", "c1.x.y", "m1.-3", "c1.123.not-a-uuid"] {
        let options = ListOptions::after(10, Cursor::new(garbage));
        assert_invalid(
            t.store.list_conversations(&user, options.clone()).await,
            "conversation cursor",
        );
        assert_invalid(
            t.store.list_messages(&user, chat.id, options).await,
            "message cursor",
        );
    }
    let message_cursor = ListOptions::after(10, Cursor::after_seq(1));
    assert_invalid(
        t.store.list_conversations(&user, message_cursor).await,
        "message cursor for conversations",
    );
    let conversation_cursor = ListOptions::after(10, Cursor::after_conversation(&chat));
    assert_invalid(
        t.store
            .list_messages(&user, chat.id, conversation_cursor)
            .await,
        "conversation cursor for messages",
    );
}
