//! The [`HistoryStore`] conformance suite, one file per concern; every case is re-exported
//! here, where [`history_store_conformance!`](crate::history_store_conformance) finds it.

use std::sync::Arc;

use crate::store::{AppendRequest, HistoryStore, ListOptions};
use crate::{
    ChatId, Conversation, Message, Metadata, NewConversation, NewMessage, StoreError, Usage,
};

mod appends;
mod content;
mod conversations;
mod cursors;
mod isolation;
mod messages;
mod parts;
mod usage;

pub use appends::*;
pub use content::*;
pub use conversations::*;
pub use cursors::*;
pub use isolation::*;
pub use messages::*;
pub use parts::*;
pub use usage::*;

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
            list_conversations_is_by_last_activity,
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
            messages_newest_first_pages_back_with_before_cursor,
            recent_messages_are_the_last_n_oldest_first,
            edit_message_changes_its_text_and_keeps_its_place,
            delete_message_removes_only_that_message,
            another_users_conversation_is_not_found_for_every_operation,
            two_users_can_use_the_same_message_id_independently,
            large_mixed_unicode_round_trips_byte_for_byte,
            nul_characters_round_trip_or_are_refused,
            parts_round_trip_exactly_through_every_read,
            edit_of_a_message_with_parts_keeps_attachments_and_replaces_text,
            plain_messages_read_back_without_parts,
            recorded_usage_survives_deleting_the_history,
            daily_usage_buckets_by_utc_day,
            usage_of_another_user_is_separate,
            cache_token_figures_round_trip_on_replies_and_in_the_ledger,
            bad_limits_and_cursors_are_refused,
            a_cursor_of_the_wrong_kind_is_refused,
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

pub(crate) fn exchange(question: &str, answer: &str, usage: Usage) -> Vec<NewMessage> {
    let q = NewMessage::user(question);
    let a = NewMessage::assistant(answer)
        .replying_to(q.id)
        .with_model("conformance-model")
        .with_usage(usage);
    vec![q, a]
}

pub(crate) async fn conversation(store: &dyn HistoryStore, user: &crate::UserId) -> Conversation {
    store
        .create_conversation(user, NewConversation::new("conformance"))
        .await
        .expect("create a conversation")
}

pub(crate) async fn append(
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

pub(crate) async fn all_messages(
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
pub(crate) fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::InvalidInput(_)) => {}
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    }
}

pub(crate) fn metadata(value: serde_json::Value) -> Metadata {
    match value {
        serde_json::Value::Object(map) => map,
        _ => Metadata::new(),
    }
}
