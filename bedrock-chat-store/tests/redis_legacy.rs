//! Data written by releases before message ids were scoped per user stays readable: their
//! messages are indexed by the global `P:msg:{id}` key, which the store still reads, for
//! the owner only.
#![cfg(feature = "redis")]

use bedrock_chat_core::conformance::{random_user, service_url, unique_prefix};
use bedrock_chat_core::{AppendRequest, HistoryStore, NewConversation, NewMessage, StoreError};
use bedrock_chat_store::{RedisConfig, RedisHistoryStore};

#[tokio::test]
async fn messages_indexed_globally_by_an_earlier_release_stay_readable_by_their_owner_only() {
    let url = service_url("BEDROCK_CHAT_TEST_REDIS_URL");
    let prefix = unique_prefix();
    let store =
        RedisHistoryStore::connect(RedisConfig::new(url.clone()).with_prefix(prefix.clone()))
            .await
            .expect("connect to Redis");
    let (alice, bob) = (random_user(), random_user());
    let chat = store
        .create_conversation(&alice, NewConversation::new("old"))
        .await
        .expect("create");
    let message = NewMessage::user("from an earlier release");
    let stored = store
        .append(
            &alice,
            AppendRequest::existing(chat.id, vec![message.clone()]),
        )
        .await
        .expect("append")
        .messages;

    // Move the index entry to where an earlier release kept it.
    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect directly");
    let scoped = format!("{prefix}:user:{}:msg:{}", alice.as_str(), message.id);
    let legacy = format!("{prefix}:msg:{}", message.id);
    let () = redis::cmd("RENAME")
        .arg(&scoped)
        .arg(&legacy)
        .query_async(&mut conn)
        .await
        .expect("RENAME");

    assert_eq!(
        store.get_message(&alice, message.id).await.expect("read"),
        stored[0]
    );
    // A retry of the old append is still recognised as one.
    let retry = store
        .append(
            &alice,
            AppendRequest::existing(chat.id, vec![message.clone()]),
        )
        .await
        .expect("retry");
    assert!(retry.already_stored);
    // Bob neither sees it nor collides with it.
    assert!(matches!(
        store.get_message(&bob, message.id).await,
        Err(StoreError::NotFound { .. })
    ));
    let bobs = store
        .create_conversation(&bob, NewConversation::new("bob's"))
        .await
        .expect("create");
    let appended = store
        .append(
            &bob,
            AppendRequest::existing(bobs.id, vec![message.clone()]),
        )
        .await
        .expect("bob uses the same id");
    assert!(!appended.already_stored);

    // Deleting alice's conversation removes the old index entry too.
    store
        .delete_conversation(&alice, chat.id)
        .await
        .expect("delete");
    let exists: bool = redis::cmd("EXISTS")
        .arg(&legacy)
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert!(!exists);
    assert!(store.get_message(&bob, message.id).await.is_ok());
}
