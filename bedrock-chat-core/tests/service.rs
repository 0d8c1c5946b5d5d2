//! `ChatService` end to end on the real in-memory store and limiter: idempotency,
//! failures that store nothing, streaming that survives a dropped client, ordering under
//! concurrency, limits and privacy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bedrock_chat_core::{
    ChatError, ChatModel, ChatPolicy, ChatService, HistoryStore, ListOptions, Message, MessageId,
    MockChatModel, ModelError, ModelEvent, ModelRequest, ModelResponse, ModelStream,
    OfflineChatModel, Quota, Role, SendRequest, StopReason, StreamEvent, Usage, UserId,
};
use bedrock_chat_ratelimit::InMemoryRateLimiter;
use bedrock_chat_store::InMemoryHistoryStore;
use futures::StreamExt;

fn user(name: &str) -> UserId {
    UserId::new(name).expect("a valid user id")
}

fn offline_service(store: &InMemoryHistoryStore) -> ChatService {
    ChatService::builder(Arc::new(OfflineChatModel::new()), Arc::new(store.clone())).build()
}

async fn messages_of(
    store: &InMemoryHistoryStore,
    user: &UserId,
    chat_id: bedrock_chat_core::ChatId,
) -> Vec<Message> {
    store
        .list_messages(user, chat_id, ListOptions::first(1000))
        .await
        .expect("list messages")
        .items
}

fn events(items: Vec<Result<ModelEvent, ModelError>>) -> ModelStream {
    futures::stream::iter(items).boxed()
}

fn mock_model() -> MockChatModel {
    let mut model = MockChatModel::new();
    model
        .expect_model_id()
        .return_const("mock-model".to_owned());
    model
}

#[tokio::test]
async fn a_conversation_keeps_its_history_across_turns() {
    let store = InMemoryHistoryStore::new();
    let service = offline_service(&store);
    let alice = user("alice");
    let first = service
        .send(SendRequest::new(alice.clone(), "Hello there").with_system_prompt("Be terse."))
        .await
        .unwrap();
    assert!(first.new_conversation);
    assert!(first.text().contains("offline model"));
    assert!(first.text().contains("0 earlier messages"));
    let second = service
        .send(SendRequest::new(alice.clone(), "Still there?").in_chat(first.chat_id))
        .await
        .unwrap();
    assert!(!second.new_conversation);
    assert!(
        second.text().contains("2 earlier messages"),
        "{}",
        second.text()
    );
    assert!(
        second.text().contains("system prompt"),
        "the stored prompt is used"
    );
    let chat = store.get_conversation(&alice, first.chat_id).await.unwrap();
    assert_eq!(chat.title, "Hello there");
    assert_eq!(chat.system_prompt.as_deref(), Some("Be terse."));
    let stored = messages_of(&store, &alice, first.chat_id).await;
    let roles: Vec<Role> = stored.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::User, Role::Assistant, Role::User, Role::Assistant]
    );
    assert_eq!(stored[3].reply_to, Some(stored[2].id));
    assert_eq!(stored[3].id, second.response_session_id);
    assert_eq!(stored[3].model.as_deref(), Some("offline"));
}

#[tokio::test]
async fn the_same_message_uid_twice_calls_the_model_once() {
    let store = InMemoryHistoryStore::new();
    let mut model = mock_model();
    model.expect_converse().times(1).returning(|_| {
        Ok(ModelResponse {
            reasoning: Vec::new(),
            text: "only once".into(),
            structured: None,
            tool_calls: Vec::new(),
            citations: Vec::new(),
            usage: Usage::new(4, 2),
            stop_reason: StopReason::EndTurn,
            latency: Duration::ZERO,
        })
    });
    let service = ChatService::builder(Arc::new(model), Arc::new(store.clone())).build();
    let bob = user("bob");
    let uid = MessageId::new();
    let first = service
        .send(SendRequest::new(bob.clone(), "hi").with_message_uid(uid))
        .await
        .unwrap();
    let again = service
        .send(SendRequest::new(bob.clone(), "hi").with_message_uid(uid))
        .await
        .unwrap();
    assert!(!first.replayed);
    assert!(again.replayed);
    assert_eq!(first.chat_id, again.chat_id);
    assert_eq!(first.answer, again.answer);
    assert_eq!(again.stop_reason, Some(StopReason::EndTurn));
    assert_eq!(messages_of(&store, &bob, first.chat_id).await.len(), 2);
    // A streamed retry replays the same exchange.
    let replay: Vec<StreamEvent> = service
        .send_stream(SendRequest::new(bob.clone(), "hi").with_message_uid(uid))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(matches!(&replay[0], StreamEvent::Started { message_uid, .. } if *message_uid == uid));
    assert!(matches!(&replay[1], StreamEvent::Delta(text) if text == "only once"));
    assert!(matches!(&replay[2], StreamEvent::Completed(reply) if reply.replayed));
}

#[tokio::test]
async fn a_failed_model_call_stores_nothing_and_a_retry_succeeds() {
    let store = InMemoryHistoryStore::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut model = mock_model();
    let counter = Arc::clone(&calls);
    model.expect_converse().times(2).returning(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(ModelError::throttled(
                "Too many requests",
                Some(Duration::from_secs(3)),
            ))
        } else {
            Ok(ModelResponse {
                reasoning: Vec::new(),
                text: "second time lucky".into(),
                structured: None,
                tool_calls: Vec::new(),
                citations: Vec::new(),
                usage: Usage::new(1, 1),
                stop_reason: StopReason::EndTurn,
                latency: Duration::ZERO,
            })
        }
    });
    let service = ChatService::builder(Arc::new(model), Arc::new(store.clone())).build();
    let carol = user("carol");
    let uid = MessageId::new();
    let err = service
        .send(SendRequest::new(carol.clone(), "hello").with_message_uid(uid))
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 503);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    let nothing = store
        .list_conversations(&carol, ListOptions::default())
        .await
        .unwrap();
    assert!(
        nothing.items.is_empty(),
        "a failed first send creates no conversation"
    );
    let reply = service
        .send(SendRequest::new(carol.clone(), "hello").with_message_uid(uid))
        .await
        .unwrap();
    assert_eq!(reply.text(), "second time lucky");
    assert_eq!(reply.message_uid, uid);
}

#[tokio::test]
async fn a_dropped_stream_still_stores_the_reply() {
    let store = InMemoryHistoryStore::new();
    let model = OfflineChatModel::new()
        .with_words_per_delta(1)
        .with_delta_delay(Duration::from_millis(5));
    let service = ChatService::builder(Arc::new(model), Arc::new(store.clone())).build();
    let dave = user("dave");
    let mut stream = service
        .send_stream(SendRequest::new(dave.clone(), "tell me a story"))
        .await
        .unwrap();
    let Some(StreamEvent::Started {
        chat_id,
        response_session_id,
        ..
    }) = stream.next().await
    else {
        panic!("the first event carries the ids");
    };
    assert!(matches!(stream.next().await, Some(StreamEvent::Delta(_))));
    drop(stream);
    assert_eq!(
        service.in_flight(),
        1,
        "generation goes on without the client"
    );
    service.shutdown().await;
    assert_eq!(service.in_flight(), 0);
    let stored = messages_of(&store, &dave, chat_id).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].id, response_session_id);
    assert!(stored[1].content.starts_with("This is the offline model"));
    assert!(
        stored[1].content.ends_with("real answers."),
        "the whole reply is stored"
    );
}

#[tokio::test]
async fn a_stream_that_fails_midway_reports_it_and_stores_nothing() {
    let store = InMemoryHistoryStore::new();
    let mut model = mock_model();
    model.expect_converse_stream().times(1).returning(|_| {
        Ok(events(vec![
            Ok(ModelEvent::TextDelta("half an ".into())),
            Ok(ModelEvent::TextDelta("answer".into())),
            Err(ModelError::model_failure("modelStreamErrorException")),
        ]))
    });
    let service = ChatService::builder(Arc::new(model), Arc::new(store.clone())).build();
    let erin = user("erin");
    let all: Vec<StreamEvent> = service
        .send_stream(SendRequest::new(erin.clone(), "hello"))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(matches!(&all[1], StreamEvent::Delta(t) if t == "half an "));
    assert!(matches!(
        &all[3],
        StreamEvent::Failed(ChatError::Model(ModelError::ModelFailure { .. }))
    ));
    let listed = store
        .list_conversations(&erin, ListOptions::default())
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "no half answer is stored");
}

#[tokio::test]
async fn a_stream_that_ends_without_a_stop_is_a_failure() {
    let store = InMemoryHistoryStore::new();
    let mut model = mock_model();
    model
        .expect_converse_stream()
        .returning(|_| Ok(events(vec![Ok(ModelEvent::TextDelta("cut off".into()))])));
    let service = ChatService::builder(Arc::new(model), Arc::new(store.clone())).build();
    let err = service
        .send_stream(SendRequest::new(user("frank"), "hello"))
        .await
        .unwrap()
        .collect_reply()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChatError::Model(ModelError::ModelFailure { .. })),
        "{err:?}"
    );
    assert_eq!(err.http_status(), 502);
}

#[tokio::test]
async fn a_stalled_stream_times_out_and_stores_nothing() {
    let store = InMemoryHistoryStore::new();
    let mut model = mock_model();
    model.expect_converse_stream().returning(|_| {
        let first = futures::stream::iter(vec![Ok(ModelEvent::TextDelta("and then".into()))]);
        Ok(first.chain(futures::stream::pending()).boxed())
    });
    let service = ChatService::builder(Arc::new(model), Arc::new(store.clone()))
        .policy(ChatPolicy::default().with_stream_idle_timeout(Duration::from_millis(100)))
        .build();
    let grace = user("grace");
    let err = service
        .send_stream(SendRequest::new(grace.clone(), "hello"))
        .await
        .unwrap()
        .collect_reply()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChatError::Model(ModelError::Timeout { .. })),
        "{err:?}"
    );
    assert!(store
        .list_conversations(&grace, ListOptions::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn a_model_refusing_before_the_stream_starts_is_an_error_not_a_stream() {
    let mut model = mock_model();
    model
        .expect_converse_stream()
        .returning(|_| Err(ModelError::access_denied("no access")));
    let service =
        ChatService::builder(Arc::new(model), Arc::new(InMemoryHistoryStore::new())).build();
    let err = service
        .send_stream(SendRequest::new(user("heidi"), "hello"))
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_to_one_conversation_are_all_stored_in_order() {
    let store = InMemoryHistoryStore::new();
    let service = offline_service(&store);
    let ivan = user("ivan");
    let first = service
        .send(SendRequest::new(ivan.clone(), "start"))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let service = service.clone();
            let request =
                SendRequest::new(ivan.clone(), format!("message {i}")).in_chat(first.chat_id);
            tokio::spawn(async move {
                if i % 2 == 0 {
                    service.send(request).await
                } else {
                    service.send_stream(request).await?.collect_reply().await
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stored = messages_of(&store, &ivan, first.chat_id).await;
    assert_eq!(stored.len(), 42);
    assert_eq!(
        stored.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=42).collect::<Vec<u64>>()
    );
    for pair in stored.chunks(2) {
        assert_eq!(pair[0].role, Role::User);
        assert_eq!(pair[1].role, Role::Assistant);
        assert_eq!(
            pair[1].reply_to,
            Some(pair[0].id),
            "each reply directly follows its question"
        );
    }
    let mut questions: Vec<&str> = stored[2..]
        .iter()
        .step_by(2)
        .map(|m| m.content.as_str())
        .collect();
    questions.sort_unstable();
    let mut expected: Vec<String> = (0..20).map(|i| format!("message {i}")).collect();
    expected.sort_unstable();
    assert_eq!(questions, expected);
}

#[tokio::test]
async fn the_request_limit_refuses_the_next_send_and_stores_nothing() {
    let store = InMemoryHistoryStore::new();
    let limiter = InMemoryRateLimiter::new(Quota::per_minute(3).unwrap());
    let service = ChatService::builder(Arc::new(OfflineChatModel::new()), Arc::new(store.clone()))
        .request_limiter(Arc::new(limiter))
        .build();
    let judy = user("judy");
    for expected_remaining in [2, 1, 0] {
        let reply = service
            .send(SendRequest::new(judy.clone(), "hi"))
            .await
            .unwrap();
        assert_eq!(reply.rate_limit.unwrap().remaining, expected_remaining);
    }
    let err = service
        .send(SendRequest::new(judy.clone(), "hi"))
        .await
        .unwrap_err();
    assert!(matches!(err, ChatError::RateLimited(_)));
    assert!(err.retry_after().is_some());
    // Another key (say, another client IP) is not affected.
    service
        .send(SendRequest::new(judy.clone(), "hi").with_rate_key("198.51.100.1"))
        .await
        .unwrap();
    assert_eq!(store.usage(&judy).await.unwrap().conversations, 4);
}

#[tokio::test]
async fn a_spent_token_budget_refuses_the_next_send() {
    let store = InMemoryHistoryStore::new();
    let budget = InMemoryRateLimiter::new(Quota::per_day(50).unwrap());
    let service = ChatService::builder(Arc::new(OfflineChatModel::new()), Arc::new(store.clone()))
        .token_budget(Arc::new(budget.clone()))
        .build();
    let kim = user("kim");
    let reply = service
        .send(SendRequest::new(kim.clone(), "a question"))
        .await
        .unwrap();
    assert!(
        reply.usage.total_tokens > 50,
        "one reply may overdraw the budget"
    );
    let err = service
        .send(SendRequest::new(kim.clone(), "another"))
        .await
        .unwrap_err();
    assert!(matches!(err, ChatError::BudgetExhausted(_)), "{err:?}");
    assert_eq!(store.usage(&kim).await.unwrap().messages, 2);
}

#[tokio::test]
async fn another_users_conversation_is_not_found_and_untouched() {
    let store = InMemoryHistoryStore::new();
    let service = offline_service(&store);
    let (owner, intruder) = (user("owner"), user("intruder"));
    let chat = service
        .send(SendRequest::new(owner.clone(), "private"))
        .await
        .unwrap();
    let err = service
        .send(SendRequest::new(intruder.clone(), "let me in").in_chat(chat.chat_id))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.http_status(), 404);
    // Replaying the owner's message_uid reveals nothing either.
    let err = service
        .send(SendRequest::new(intruder.clone(), "private").with_message_uid(chat.message_uid))
        .await;
    match err {
        Err(e) => assert!(matches!(e.http_status(), 404 | 409), "{e:?}"),
        Ok(reply) => assert_ne!(
            reply.chat_id, chat.chat_id,
            "must never return the owner's exchange"
        ),
    }
    assert_eq!(messages_of(&store, &owner, chat.chat_id).await.len(), 2);
}

#[tokio::test]
async fn the_offline_model_reports_its_id_and_usage() {
    let model: Arc<dyn ChatModel> = Arc::new(OfflineChatModel::new());
    assert_eq!(model.model_id(), "offline");
    let response = model
        .converse(ModelRequest::new([bedrock_chat_core::ModelMessage::user(
            "count me",
        )]))
        .await
        .unwrap();
    assert_eq!(
        response.usage.total_tokens,
        response.usage.input_tokens + response.usage.output_tokens
    );
}
