//! Reading, paging, editing and deleting messages.

use serde_json::json;

use super::{all_messages, append, assert_not_found, conversation, exchange, metadata, MakeStore};
use crate::conformance::random_user;
use crate::context::ContextMessage;
use crate::store::{Cursor, ListOptions};
use crate::{MessageId, MessageUpdate, Usage};

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
            .list_messages(&user, chat.id, ListOptions::first(7).with_cursor(cursor))
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
            exchange(&format!("q{i}"), &format!("a{i}"), Usage::new(10, i + 1)),
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

    // The context window's read agrees with it, exact token counts included.
    for limit in [0, 4, 100] {
        let messages = t
            .store
            .recent_messages(&user, chat.id, limit)
            .await
            .expect("recent");
        let context = t
            .store
            .recent_context(&user, chat.id, limit)
            .await
            .expect("recent context");
        let expected: Vec<ContextMessage> =
            messages.into_iter().map(ContextMessage::from).collect();
        assert_eq!(context, expected, "limit {limit}");
    }
    let stranger = random_user();
    assert!(
        t.store.recent_context(&stranger, chat.id, 4).await.is_err(),
        "another user's conversation does not exist"
    );
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

/// Newest first with a `before` cursor, as a chat app scrolls up: the latest page, then
/// each older one, every message exactly once in descending order, while new messages
/// arrive (they are newer than the first page, so they do not appear).
pub async fn messages_newest_first_pages_back_with_before_cursor(make: &impl MakeStore) {
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
    let latest = t
        .store
        .list_messages(&user, chat.id, ListOptions::latest(4))
        .await
        .expect("latest");
    assert_eq!(
        latest.items.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [30, 29, 28, 27]
    );
    assert_eq!(latest.items[0].content, "a14");
    assert_eq!(latest.next_cursor, Some(Cursor::before_seq(27)));

    let mut seen: Vec<u64> = latest.items.iter().map(|m| m.seq).collect();
    let mut cursor = latest.next_cursor;
    for page_number in 0.. {
        let Some(before) = cursor else { break };
        append(
            &*t.store,
            &user,
            chat.id,
            exchange("late", "late", Usage::default()),
        )
        .await;
        let page = t
            .store
            .list_messages(&user, chat.id, ListOptions::before(7, before))
            .await
            .expect("page");
        assert!(page.items.len() <= 7);
        seen.extend(page.items.iter().map(|m| m.seq));
        cursor = page.next_cursor;
        assert!(page_number < 20, "pagination does not end");
    }
    assert_eq!(
        seen,
        (1..=30).rev().collect::<Vec<u64>>(),
        "every message once, newest first"
    );

    // A page that ends exactly at the oldest message says there is nothing before it.
    let all_but_last = t
        .store
        .list_messages(
            &user,
            chat.id,
            ListOptions::before(2, Cursor::before_seq(3)),
        )
        .await
        .expect("the first two");
    assert_eq!(
        all_but_last.items.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(all_but_last.next_cursor, None);
    // Gaps left by deleted messages are skipped, not returned or counted.
    let second = all_but_last.items[0].id;
    t.store.delete_message(&user, second).await.expect("delete");
    let around_gap = t
        .store
        .list_messages(
            &user,
            chat.id,
            ListOptions::before(2, Cursor::before_seq(4)),
        )
        .await
        .expect("around a gap");
    assert_eq!(
        around_gap.items.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [3, 1]
    );
    // The newest-first listing of an empty conversation is one empty page.
    let empty = conversation(&*t.store, &user).await;
    let page = t
        .store
        .list_messages(&user, empty.id, ListOptions::latest(10))
        .await
        .expect("empty");
    assert!(page.items.is_empty());
    assert_eq!(page.next_cursor, None);
}
