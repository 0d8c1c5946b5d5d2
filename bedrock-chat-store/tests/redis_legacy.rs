//! Data written by releases before message ids were scoped per user stays readable: their
//! messages are indexed by the global `P:msg:{id}` key, which the store still reads, for
//! the owner only. Messages and usage ledgers written before parts and prompt-cache
//! counts were kept read as plain messages with no cache figures.
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

#[tokio::test]
async fn messages_and_ledgers_from_before_parts_read_as_plain_without_cache_figures() {
    use bedrock_chat_core::parts::{ImageFormat, Part};
    use bedrock_chat_core::{MessageUpdate, Usage};
    let url = service_url("BEDROCK_CHAT_TEST_REDIS_URL");
    let prefix = unique_prefix();
    let store =
        RedisHistoryStore::connect(RedisConfig::new(url.clone()).with_prefix(prefix.clone()))
            .await
            .expect("connect to Redis");
    let user = random_user();
    let chat = store
        .create_conversation(&user, NewConversation::new("old"))
        .await
        .expect("create");
    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect directly");

    // A reply as an earlier release wrote it: a header without cache counts, no parts.
    let reply = NewMessage::assistant("old reply");
    let header = r#"{"role":"assistant","reply_to":null,"model":"m","usage":{"input_tokens":5,"output_tokens":6,"total_tokens":11},"created_at":1000}"#;
    let msg_key = format!("{prefix}:chat:{}:msg", chat.id);
    let id = reply.id.to_string();
    let () = redis::cmd("HSET")
        .arg(&msg_key)
        .arg(&id)
        .arg(header)
        .arg(format!("{id}:s"))
        .arg(1)
        .arg(format!("{id}:c"))
        .arg("old reply")
        .arg(format!("{id}:m"))
        .arg("{}")
        .arg(format!("{id}:u"))
        .arg(1000)
        .query_async(&mut conn)
        .await
        .expect("HSET an old message");
    let () = redis::cmd("ZADD")
        .arg(format!("{prefix}:chat:{}:seq", chat.id))
        .arg(1)
        .arg(&id)
        .query_async(&mut conn)
        .await
        .expect("ZADD");
    let () = redis::cmd("SET")
        .arg(format!("{prefix}:user:{}:msg:{id}", user.as_str()))
        .arg(chat.id.to_string())
        .query_async(&mut conn)
        .await
        .expect("SET the index");
    let () = redis::cmd("HSET")
        .arg(format!("{prefix}:chat:{}", chat.id))
        .arg("count")
        .arg(1)
        .arg("last_seq")
        .arg(1)
        .query_async(&mut conn)
        .await
        .expect("HSET the conversation");

    let read = store.get_message(&user, reply.id).await.expect("read");
    assert!(read.parts.is_empty());
    assert_eq!(read.usage, Some(Usage::new(5, 6)));
    let edited = store
        .update_message(&user, reply.id, MessageUpdate::new().with_content("edited"))
        .await
        .expect("edit");
    assert!(edited.parts.is_empty(), "an old message stays plain");
    assert_eq!(edited.content, "edited");

    // A ledger as an earlier release kept it: no cache fields.
    let day = chrono::NaiveDate::from_ymd_opt(2025, 9, 1).expect("a date");
    let usage_key = format!("{prefix}:user:{}:usage", user.as_str());
    let () = redis::cmd("HSET")
        .arg(&usage_key)
        .arg("in")
        .arg(7)
        .arg("out")
        .arg(7)
        .arg("total")
        .arg(14)
        .arg("calls")
        .arg(1)
        .arg("2025-09-01:in")
        .arg(7)
        .arg("2025-09-01:out")
        .arg(7)
        .arg("2025-09-01:total")
        .arg(14)
        .arg("2025-09-01:calls")
        .arg(1)
        .query_async(&mut conn)
        .await
        .expect("HSET an old ledger");
    let () = redis::cmd("ZADD")
        .arg(format!("{usage_key}:days"))
        .arg((day - chrono::NaiveDate::default()).num_days())
        .arg("2025-09-01")
        .query_async(&mut conn)
        .await
        .expect("ZADD the day");
    let totals = store.usage(&user).await.expect("usage");
    assert_eq!((totals.usage, totals.calls), (Usage::new(7, 7), 1));
    let at = day.and_hms_opt(9, 0, 0).expect("a time").and_utc();
    store
        .record_usage(&user, at, Usage::new(1, 1).with_cache(30, 4))
        .await
        .expect("record");
    let expected = Usage::new(7, 7).saturating_add(Usage::new(1, 1).with_cache(30, 4));
    let totals = store.usage(&user).await.expect("usage");
    assert_eq!((totals.usage, totals.calls), (expected, 2));
    let days = store.daily_usage(&user, day, day).await.expect("daily");
    assert_eq!((days[0].usage, days[0].calls), (expected, 2));

    // A message with parts beside the old one; a plain one stores no parts field.
    let with_parts = NewMessage::user("").with_parts(vec![
        Part::image(ImageFormat::Png, vec![0, 1]),
        Part::text("new"),
    ]);
    let plain = NewMessage::user("plain");
    store
        .append(
            &user,
            AppendRequest::existing(chat.id, vec![with_parts.clone(), plain.clone()]),
        )
        .await
        .expect("append");
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(&msg_key)
        .query_async(&mut conn)
        .await
        .expect("HKEYS");
    assert!(fields.contains(&format!("{}:p", with_parts.id)));
    assert!(!fields
        .iter()
        .any(|f| f.starts_with(&plain.id.to_string()) && f.ends_with(":p")));
    let read = store.get_message(&user, with_parts.id).await.expect("read");
    assert_eq!(read.parts, with_parts.parts);
}
