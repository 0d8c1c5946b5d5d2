//! Text and metadata round-trip exactly.

use serde_json::json;

use super::{all_messages, append, assert_invalid, conversation, metadata, MakeStore};
use crate::conformance::random_user;
use crate::store::AppendRequest;
use crate::{NewConversation, NewMessage};

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
