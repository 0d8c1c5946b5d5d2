//! Appending messages: order, idempotency, atomicity, concurrency.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;

use super::{
    all_messages, append, assert_invalid, assert_not_found, conversation, exchange, metadata,
    MakeStore,
};
use crate::conformance::random_user;
use crate::store::AppendRequest;
use crate::{ChatId, MessageId, NewConversation, NewMessage, Role, StoreError, Usage};

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
