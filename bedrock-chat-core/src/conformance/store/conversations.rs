//! Creating, reading, listing, updating and deleting conversations.

use std::collections::HashSet;

use serde_json::json;

use super::{all_messages, append, assert_not_found, conversation, exchange, metadata, MakeStore};
use crate::conformance::random_user;
use crate::store::{Cursor, ListOptions};
use crate::{ChatId, ConversationUpdate, NewConversation, StoreError, Usage};

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
        let options = ListOptions::first(10).with_cursor(cursor.clone());
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
}

/// Conversations list by last activity: appending to an old conversation moves it to the
/// front, and its `updated_at` is what the listing is ordered by.
pub async fn list_conversations_is_by_last_activity(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            t.store
                .create_conversation(&user, NewConversation::new(format!("c{i}")))
                .await
                .expect("create")
                .id,
        );
    }
    // The oldest, then the second oldest, come back to life.
    for id in [ids[0], ids[1]] {
        append(
            &*t.store,
            &user,
            id,
            exchange("again", "yes", Usage::default()),
        )
        .await;
    }
    let page = t
        .store
        .list_conversations(&user, ListOptions::first(10))
        .await
        .expect("list");
    let listed: Vec<ChatId> = page.items.iter().map(|c| c.id).collect();
    assert_eq!(listed, [ids[1], ids[0], ids[3], ids[2]]);
    assert!(
        page.items
            .windows(2)
            .all(|w| (w[0].updated_at, w[0].id) > (w[1].updated_at, w[1].id)),
        "ordered by (updated_at, id) descending"
    );
    assert!(page.items[0].updated_at > page.items[0].created_at);

    // Paging by last activity, one at a time, gives the same order.
    let mut paged = Vec::new();
    let mut options = ListOptions::first(1);
    loop {
        let page = t
            .store
            .list_conversations(&user, options.clone())
            .await
            .expect("page");
        paged.extend(page.items.iter().map(|c| c.id));
        match page.next_cursor {
            Some(next) => options = ListOptions::after(1, next),
            None => break,
        }
        assert!(paged.len() <= 4, "pagination does not end");
    }
    assert_eq!(paged, listed);
}
