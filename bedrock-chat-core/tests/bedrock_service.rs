//! `ChatService` end to end on `BedrockChatModel`, `FakeBedrock` and the real
//! `InMemoryHistoryStore`: history reaches the model in order, failed or interrupted
//! streams store nothing, and an idempotent retry after a failure succeeds.
#![cfg(all(feature = "bedrock", feature = "testkit"))]

use std::sync::Arc;
use std::time::Duration;

use bedrock_chat_core::bedrock::BedrockConfig;
use bedrock_chat_core::testkit::{FakeBedrock, FakeReply, Fault, Operation};
use bedrock_chat_core::{
    ChatError, ChatId, ChatPolicy, ChatService, HistoryStore, ListOptions, Message, MessageId,
    ModelError, Role, SendRequest, StopReason, StreamEvent, Usage, UserId,
};
use bedrock_chat_store::InMemoryHistoryStore;
use futures::StreamExt;
use serde_json::{json, Value};

fn user(name: &str) -> UserId {
    UserId::new(name).expect("a valid user id")
}

async fn fake() -> FakeBedrock {
    FakeBedrock::start().await.expect("the fake starts")
}

fn config() -> BedrockConfig {
    BedrockConfig::new("amazon.nova-micro-v1:0")
        .with_backoff(Duration::from_millis(5), Duration::from_millis(50))
        .with_stream_idle_timeout(Duration::from_secs(5))
}

fn service(fake: &FakeBedrock, config: BedrockConfig, store: &InMemoryHistoryStore) -> ChatService {
    ChatService::builder(Arc::new(fake.chat_model(config)), Arc::new(store.clone()))
        .policy(ChatPolicy::default().with_system_prompt("You are terse."))
        .build()
}

async fn messages_of(store: &InMemoryHistoryStore, user: &UserId, chat_id: ChatId) -> Vec<Message> {
    store
        .list_messages(user, chat_id, ListOptions::first(100))
        .await
        .expect("list messages")
        .items
}

async fn conversation_count(store: &InMemoryHistoryStore, user: &UserId) -> usize {
    store
        .list_conversations(user, ListOptions::default())
        .await
        .expect("list conversations")
        .items
        .len()
}

fn turns(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default().to_owned(),
                m["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn multi_turn_history_reaches_the_model_in_order() {
    let fake = fake().await;
    let store = InMemoryHistoryStore::new();
    let service = service(&fake, config(), &store);
    let alice = user("alice");
    fake.push_reply(FakeReply::text("Hello Alice.").with_usage(11, 3));
    let first = service
        .send(SendRequest::new(alice.clone(), "Hi, I am Alice."))
        .await
        .unwrap();
    assert_eq!(first.text(), "Hello Alice.");
    assert_eq!(first.usage, Usage::new(11, 3));
    assert_eq!(first.model, "amazon.nova-micro-v1:0");
    let second = service
        .send_stream(SendRequest::new(alice.clone(), "What is my name?").in_chat(first.chat_id))
        .await
        .unwrap()
        .collect_reply()
        .await
        .unwrap();
    assert_eq!(second.text(), "What is my name?", "the fake echoes");
    service
        .send(SendRequest::new(alice.clone(), "Thanks.").in_chat(first.chat_id))
        .await
        .unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[1].operation, Operation::ConverseStream);
    let last = &requests[2].body;
    // Nova caches prompts: a cache point follows the system prompt and the turn before the
    // last.
    assert_eq!(
        last["system"],
        json!([{"text": "You are terse."}, {"cachePoint": {"type": "default"}}])
    );
    assert_eq!(
        last["messages"][3]["content"][1],
        json!({"cachePoint": {"type": "default"}})
    );
    let expected: Vec<(String, String)> = [
        ("user", "Hi, I am Alice."),
        ("assistant", "Hello Alice."),
        ("user", "What is my name?"),
        ("assistant", "What is my name?"),
        ("user", "Thanks."),
    ]
    .iter()
    .map(|(r, t)| ((*r).to_owned(), (*t).to_owned()))
    .collect();
    assert_eq!(turns(last), expected);

    let stored = messages_of(&store, &alice, first.chat_id).await;
    assert_eq!(stored.len(), 6);
    assert_eq!(stored[1].usage, Some(Usage::new(11, 3)));
    assert_eq!(stored[3].metadata["stop_reason"], "end_turn");
}

#[tokio::test]
async fn a_stream_that_fails_midway_stores_nothing_and_the_same_uid_then_succeeds() {
    let fake = fake().await;
    let store = InMemoryHistoryStore::new();
    let service = service(&fake, config(), &store);
    let bob = user("bob");
    let uid = MessageId::new();
    fake.push_fault(Fault::exception_after(
        2,
        "modelStreamErrorException",
        "broke off",
    ));
    let events: Vec<StreamEvent> = service
        .send_stream(SendRequest::new(bob.clone(), "one two three four").with_message_uid(uid))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(matches!(&events[0], StreamEvent::Started { message_uid, .. } if *message_uid == uid));
    assert!(matches!(&events[1], StreamEvent::Delta(t) if t == "one "));
    assert!(matches!(&events[2], StreamEvent::Delta(t) if t == "two "));
    assert!(
        matches!(
            &events[3],
            StreamEvent::Failed(ChatError::Model(ModelError::ModelFailure { .. }))
        ),
        "{events:?}"
    );
    assert_eq!(events.len(), 4);
    assert_eq!(
        conversation_count(&store, &bob).await,
        0,
        "no half answer is stored"
    );

    let reply = service
        .send_stream(SendRequest::new(bob.clone(), "one two three four").with_message_uid(uid))
        .await
        .unwrap()
        .collect_reply()
        .await
        .unwrap();
    assert!(!reply.replayed);
    assert_eq!(reply.message_uid, uid);
    assert_eq!(reply.text(), "one two three four", "the whole reply, once");
    assert_eq!(reply.stop_reason, Some(StopReason::EndTurn));
    let stored = messages_of(&store, &bob, reply.chat_id).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].id, uid);
    assert_eq!(stored[1].content, "one two three four");
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test]
async fn an_interrupted_stream_in_an_existing_conversation_leaves_it_as_it_was() {
    let fake = fake().await;
    let store = InMemoryHistoryStore::new();
    let service = service(
        &fake,
        config().with_stream_idle_timeout(Duration::from_millis(300)),
        &store,
    );
    let carol = user("carol");
    let first = service
        .send(SendRequest::new(carol.clone(), "first question"))
        .await
        .unwrap();
    fake.push_fault(Fault::stall_after(1));
    let result = service
        .send_stream(SendRequest::new(carol.clone(), "second question").in_chat(first.chat_id))
        .await
        .unwrap()
        .collect_reply()
        .await;
    assert!(
        matches!(result, Err(ChatError::Model(ModelError::Timeout { .. }))),
        "{result:?}"
    );
    let stored = messages_of(&store, &carol, first.chat_id).await;
    assert_eq!(stored.len(), 2, "only the first exchange");
    assert!(stored.iter().all(|m| !m.content.contains("second")));
}

#[tokio::test]
async fn a_send_that_exhausts_its_retries_stores_nothing_and_a_retry_succeeds() {
    let fake = fake().await;
    let store = InMemoryHistoryStore::new();
    let service = service(&fake, config().with_max_attempts(2), &store);
    let dave = user("dave");
    let uid = MessageId::new();
    fake.throttle_next(2);
    let error = service
        .send(SendRequest::new(dave.clone(), "hello?").with_message_uid(uid))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ChatError::Model(ModelError::Throttled { .. })),
        "{error:?}"
    );
    assert_eq!(error.http_status(), 503);
    assert!(error.is_retryable());
    assert_eq!(conversation_count(&store, &dave).await, 0);
    assert_eq!(fake.request_count(), 2);

    let reply = service
        .send(SendRequest::new(dave.clone(), "hello?").with_message_uid(uid))
        .await
        .unwrap();
    assert_eq!(reply.text(), "hello?");
    let again = service
        .send(SendRequest::new(dave.clone(), "hello?").with_message_uid(uid))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(fake.request_count(), 3, "the replay does not call Bedrock");
}

#[tokio::test]
async fn a_stream_the_client_drops_is_still_stored_in_full() {
    let fake = fake().await;
    fake.push_reply(
        FakeReply::text("")
            .with_deltas(["a ", "reply ", "that ", "keeps ", "going"])
            .with_delta_delay(Duration::from_millis(10)),
    );
    let store = InMemoryHistoryStore::new();
    let service = service(&fake, config(), &store);
    let erin = user("erin");
    let mut stream = service
        .send_stream(SendRequest::new(erin.clone(), "tell me"))
        .await
        .unwrap();
    let Some(StreamEvent::Started { chat_id, .. }) = stream.next().await else {
        panic!("the first event carries the ids");
    };
    assert!(matches!(stream.next().await, Some(StreamEvent::Delta(_))));
    drop(stream);
    service.shutdown().await;
    let stored = messages_of(&store, &erin, chat_id).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].role, Role::Assistant);
    assert_eq!(stored[1].content, "a reply that keeps going");
}
