//! Page limits and cursors: bad ones are refused.

use super::{append, assert_invalid, conversation, exchange, MakeStore};
use crate::conformance::random_user;
use crate::store::{Cursor, ListOptions, MessageOrder};
use crate::Usage;

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

/// A cursor of one kind is refused where another kind is expected: a newest-first
/// message cursor in an oldest-first listing and the reverse, and either for conversations.
pub async fn a_cursor_of_the_wrong_kind_is_refused(make: &impl MakeStore) {
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
    let conversation_cursor = Cursor::after_conversation(&chat);
    let wrong_for_messages = [
        (
            "a before-cursor oldest first",
            ListOptions::after(10, Cursor::before_seq(2)),
        ),
        (
            "an after-cursor newest first",
            ListOptions::before(10, Cursor::after_seq(1)),
        ),
        (
            "a conversation cursor newest first",
            ListOptions::before(10, conversation_cursor.clone()),
        ),
        (
            "an after-cursor with the order set",
            ListOptions::after(10, Cursor::after_seq(1)).with_order(MessageOrder::NewestFirst),
        ),
    ];
    for (what, options) in wrong_for_messages {
        assert_invalid(t.store.list_messages(&user, chat.id, options).await, what);
    }
    for garbage in ["b1.", "b1.x", "b1.-1", "b2.3", "B1.3"] {
        assert_invalid(
            t.store
                .list_messages(
                    &user,
                    chat.id,
                    ListOptions::before(10, Cursor::new(garbage)),
                )
                .await,
            "garbled before-cursor",
        );
    }
    for cursor in [Cursor::before_seq(2), Cursor::after_seq(2)] {
        assert_invalid(
            t.store
                .list_conversations(&user, ListOptions::after(10, cursor.clone()))
                .await,
            "a message cursor for conversations",
        );
        // The order of a conversation listing does not matter; the cursor's kind does.
        assert_invalid(
            t.store
                .list_conversations(&user, ListOptions::before(10, cursor))
                .await,
            "a message cursor for conversations, newest first",
        );
    }
    // The right kinds are accepted.
    let newest = t
        .store
        .list_messages(
            &user,
            chat.id,
            ListOptions::before(10, Cursor::before_seq(2)),
        )
        .await
        .expect("a before-cursor newest first");
    assert_eq!(newest.items.len(), 1);
    t.store
        .list_conversations(&user, ListOptions::before(10, conversation_cursor))
        .await
        .expect("the order is ignored for conversations");
}
