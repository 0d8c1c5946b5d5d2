//! Exact token counts: `BedrockChatModel::count_tokens` through Bedrock's CountTokens
//! operation on `FakeBedrock` (through the real AWS SDK), and `ChatService` sizing context
//! windows by the counts it keeps with each message.
#![cfg(all(feature = "bedrock", feature = "testkit"))]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use bedrock_chat_core::bedrock::BedrockConfig;
use bedrock_chat_core::context::{stored_tokens, CharRatioEstimator};
use bedrock_chat_core::testkit::{FakeBedrock, FakeReply, Operation};
use bedrock_chat_core::{
    ChatModel, ChatPolicy, ChatService, HistoryStore, ModelMessage, ModelRequest, OfflineChatModel,
    SendRequest, UserId,
};
use bedrock_chat_store::InMemoryHistoryStore;

const NOVA: &str = "amazon.nova-lite-v1:0";

fn alice() -> UserId {
    UserId::new("alice").unwrap()
}

#[tokio::test]
async fn count_tokens_asks_bedrock_and_takes_no_scripted_reply() {
    let fake = FakeBedrock::start().await.unwrap();
    fake.push_reply(FakeReply::text("kept for the next call"));
    let model = fake.chat_model(BedrockConfig::new(NOVA));
    let request =
        ModelRequest::new([ModelMessage::user("x".repeat(400))]).with_system("y".repeat(40));

    let count = model.count_tokens(&request).await.unwrap();
    assert_eq!(count, Some(110), "440 characters at 4 a token");
    let recorded = fake.last_request().unwrap();
    assert_eq!(recorded.operation, Operation::CountTokens);
    assert_eq!(
        recorded.body["input"]["converse"]["messages"][0]["role"],
        "user"
    );
    assert_eq!(fake.pending(), 1, "the scripted reply is still there");

    // Bedrock's validation applies: a conversation that starts with the assistant.
    let bad = ModelRequest::new([ModelMessage::assistant("hi")]);
    assert!(model.count_tokens(&bad).await.is_err());
    // The offline model cannot count.
    assert_eq!(
        OfflineChatModel::new()
            .count_tokens(&request)
            .await
            .unwrap(),
        None
    );
}

/// A service on `fake` whose estimator thinks every character is a token (4x too many),
/// with a 700-token context budget.
fn service(fake: &FakeBedrock, store: &InMemoryHistoryStore, exact: bool) -> ChatService {
    ChatService::builder(
        Arc::new(fake.chat_model(BedrockConfig::new(NOVA))),
        Arc::new(store.clone()),
    )
    .token_estimator(Arc::new(CharRatioEstimator {
        chars_per_token: 1.0,
        per_message_overhead: 0,
    }))
    .policy(
        ChatPolicy::default()
            .with_context_window(20, 700)
            .with_exact_token_counts(exact),
    )
    .build()
}

/// Sends four 200-character messages (each echoed by the fake) in one conversation and
/// answers how many turns the last call sent.
async fn turns_in_last_call(exact: bool) -> (usize, InMemoryHistoryStore) {
    let fake = FakeBedrock::start().await.unwrap();
    let store = InMemoryHistoryStore::new();
    let service = service(&fake, &store, exact);
    let mut chat = None;
    for _ in 0..4 {
        let mut request = SendRequest::new(alice(), "w".repeat(200));
        if let Some(chat) = chat {
            request = request.in_chat(chat);
        }
        chat = Some(service.send(request).await.unwrap().chat_id);
    }
    let body = fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.operation == Operation::Converse)
        .unwrap()
        .body;
    (body["messages"].as_array().unwrap().len(), store)
}

#[tokio::test]
async fn exact_counts_size_the_window_where_estimates_would_cut_it_short() {
    // Without counts, each 200-character question is estimated at 200 tokens (replies keep
    // the output tokens the model reported, about 50): 700 hold the new question and two
    // earlier exchanges, 5 turns.
    let (estimated, _) = turns_in_last_call(false).await;
    assert_eq!(estimated, 5);
    // Counted, each costs about 50: the whole conversation fits.
    let (counted, store) = turns_in_last_call(true).await;
    assert_eq!(counted, 7);

    // The counts are kept with the messages: the model's count of each question, the
    // output tokens of each reply.
    let chats = store
        .list_conversations(&alice(), Default::default())
        .await
        .unwrap();
    let messages = store
        .recent_messages(&alice(), chats.items[0].id, 10)
        .await
        .unwrap();
    for message in &messages {
        let tokens = stored_tokens(message).unwrap();
        assert!((50..=60).contains(&tokens), "{tokens} for {message:?}");
    }
}
