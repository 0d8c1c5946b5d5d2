//! One user never sees, changes or collides with another user's data.

use super::{all_messages, append, assert_not_found, conversation, exchange, MakeStore};
use crate::conformance::random_user;
use crate::store::{AppendRequest, ListOptions};
use crate::{ConversationUpdate, MessageId, MessageUpdate, NewConversation, NewMessage, Usage};

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
                parts: m.parts.clone(),
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

/// Message ids are scoped per user: two users can each store a message with the same id,
/// each reads their own, and deleting one leaves the other.
pub async fn two_users_can_use_the_same_message_id_independently(make: &impl MakeStore) {
    let t = make.make().await;
    let (alice, bob) = (random_user(), random_user());
    let alices_chat = conversation(&*t.store, &alice).await;
    let bobs_chat = conversation(&*t.store, &bob).await;
    let shared = exchange("alice asks", "alice is answered", Usage::new(1, 1));
    let ids: Vec<MessageId> = shared.iter().map(|m| m.id).collect();
    let alices = append(&*t.store, &alice, alices_chat.id, shared.clone()).await;

    // Bob sends the same ids with his own content: a fresh append for him, no conflict.
    let bobs_messages: Vec<NewMessage> = shared
        .iter()
        .map(|m| NewMessage {
            content: format!("bob's {}", m.content),
            ..m.clone()
        })
        .collect();
    let appended = t
        .store
        .append(&bob, AppendRequest::existing(bobs_chat.id, bobs_messages))
        .await
        .expect("bob appends ids alice used");
    assert!(
        !appended.already_stored,
        "bob's append is his own, not a replay"
    );
    assert_eq!(
        appended.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2]
    );
    // A replay is idempotent for each of them.
    let replay = t
        .store
        .append(
            &bob,
            AppendRequest::existing(
                bobs_chat.id,
                appended
                    .messages
                    .iter()
                    .map(|m| NewMessage {
                        id: m.id,
                        role: m.role,
                        content: m.content.clone(),
                        parts: m.parts.clone(),
                        reply_to: m.reply_to,
                        model: m.model.clone(),
                        usage: m.usage,
                        metadata: m.metadata.clone(),
                    })
                    .collect(),
            ),
        )
        .await
        .expect("bob's replay");
    assert!(replay.already_stored);
    assert_eq!(replay.messages, appended.messages);

    for (i, id) in ids.iter().enumerate() {
        let a = t.store.get_message(&alice, *id).await.expect("alice's");
        let b = t.store.get_message(&bob, *id).await.expect("bob's");
        assert_eq!(a, alices[i]);
        assert_eq!(b, appended.messages[i]);
        assert_eq!(a.chat_id, alices_chat.id);
        assert_eq!(b.chat_id, bobs_chat.id);
        assert!(b.content.starts_with("bob's"));
    }
    let edit = MessageUpdate {
        content: Some("bob edited".into()),
        metadata: None,
    };
    t.store
        .update_message(&bob, ids[0], edit)
        .await
        .expect("bob edits his");
    assert_eq!(
        t.store
            .get_message(&alice, ids[0])
            .await
            .expect("alice's")
            .content,
        "alice asks"
    );
    t.store
        .delete_message(&alice, ids[1])
        .await
        .expect("alice deletes hers");
    assert_not_found(t.store.get_message(&alice, ids[1]).await, "alice's deleted");
    assert_eq!(
        t.store
            .get_message(&bob, ids[1])
            .await
            .expect("bob's stays"),
        appended.messages[1]
    );
    assert_eq!(all_messages(&*t.store, &bob, bobs_chat.id).await.len(), 2);
    t.store
        .delete_conversation(&bob, bobs_chat.id)
        .await
        .expect("bob deletes his conversation");
    assert_eq!(
        t.store
            .get_message(&alice, ids[0])
            .await
            .expect("alice's stays"),
        alices[0]
    );
}
