//! The service's ordering and error paths, with mocked parts: what is called, what is
//! not, and in which order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use mockall::predicate::eq;

use super::*;
use crate::context::ContextMessage;
use crate::error::{ModelError, RateLimitError};
use crate::limiter::{MockRateLimiter, Quota};
use crate::model::{MockChatModel, ModelResponse};
use crate::store::{Appended, MockHistoryStore};
use crate::types::Conversation;

fn user() -> UserId {
    UserId::new("unit-user").unwrap()
}

fn model_answering(text: &'static str) -> MockChatModel {
    let mut model = MockChatModel::new();
    model
        .expect_model_id()
        .return_const("mock-model".to_owned());
    model.expect_converse().returning(move |_| {
        Ok(ModelResponse {
            reasoning: Vec::new(),
            text: text.into(),
            structured: None,
            tool_calls: Vec::new(),
            citations: Vec::new(),
            usage: Usage::new(7, 3),
            stop_reason: StopReason::EndTurn,
            latency: Duration::from_millis(5),
        })
    });
    model
}

fn silent_model() -> MockChatModel {
    let mut model = MockChatModel::new();
    model
        .expect_model_id()
        .return_const("mock-model".to_owned());
    model.expect_converse().never();
    model.expect_converse_stream().never();
    model
}

fn stored_message(new: &NewMessage, chat_id: ChatId, seq: u64) -> Message {
    Message {
        id: new.id,
        chat_id,
        seq,
        role: new.role,
        content: new.content.clone(),
        parts: new.parts.clone(),
        reply_to: new.reply_to,
        model: new.model.clone(),
        usage: new.usage,
        metadata: new.metadata.clone(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

/// A store mock whose append stores what it is given.
fn store_accepting_appends() -> MockHistoryStore {
    let mut store = MockHistoryStore::new();
    store.expect_backend().return_const("mock");
    store.expect_append().returning(|_, request| {
        let chat_id = request.chat_id();
        Ok(Appended {
            messages: request
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| stored_message(m, chat_id, i as u64 + 1))
                .collect(),
            already_stored: false,
        })
    });
    // Every stored exchange is recorded in the usage ledger.
    store.expect_record_usage().returning(|_, _, _| Ok(()));
    store
}

fn decision(allowed: bool) -> Decision {
    let quota = Quota::per_minute(10).unwrap();
    quota.decision(allowed, if allowed { 1 } else { 10 }, quota.window_at(0))
}

fn service(
    model: MockChatModel,
    store: MockHistoryStore,
    requests: Option<MockRateLimiter>,
    budget: Option<MockRateLimiter>,
) -> ChatService {
    let mut builder = ChatService::builder(Arc::new(model), Arc::new(store));
    if let Some(limiter) = requests {
        builder = builder.request_limiter(Arc::new(limiter));
    }
    if let Some(limiter) = budget {
        builder = builder.token_budget(Arc::new(limiter));
    }
    builder.build()
}

#[tokio::test]
async fn model_failure_writes_nothing() {
    let mut model = MockChatModel::new();
    model
        .expect_model_id()
        .return_const("mock-model".to_owned());
    model
        .expect_converse()
        .times(1)
        .returning(|_| Err(ModelError::unavailable("503")));
    let mut store = MockHistoryStore::new();
    store.expect_append().never();
    let err = service(model, store, None, None)
        .send(SendRequest::new(user(), "hello"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ChatError::Model(ModelError::Unavailable { .. })
    ));
    assert!(err.is_retryable());
    assert_eq!(err.http_status(), 503);
}

#[tokio::test]
async fn limited_request_never_reaches_the_model_or_the_store() {
    let mut limiter = MockRateLimiter::new();
    limiter
        .expect_check()
        .with(eq("unit-user"), eq(1))
        .times(1)
        .returning(|_, _| Ok(decision(false)));
    let mut store = MockHistoryStore::new();
    store.expect_append().never();
    store.expect_get_conversation().never();
    let err = service(silent_model(), store, Some(limiter), None)
        .send(SendRequest::new(user(), "hello"))
        .await
        .unwrap_err();
    let ChatError::RateLimited(d) = &err else {
        panic!("expected RateLimited, got {err:?}");
    };
    assert!(!d.allowed);
    assert_eq!(err.http_status(), 429);
    assert!(err.retry_after().is_some());
}

#[tokio::test]
async fn spent_budget_refuses_before_a_request_is_counted() {
    let mut budget = MockRateLimiter::new();
    budget
        .expect_check()
        .with(eq("unit-user"), eq(0))
        .times(1)
        .returning(|_, _| Ok(decision(false)));
    let mut requests = MockRateLimiter::new();
    requests.expect_check().never();
    let err = service(
        silent_model(),
        MockHistoryStore::new(),
        Some(requests),
        Some(budget),
    )
    .send(SendRequest::new(user(), "hello"))
    .await
    .unwrap_err();
    assert!(matches!(err, ChatError::BudgetExhausted(_)), "{err:?}");
}

#[tokio::test]
async fn a_limiter_that_fails_refuses_the_send() {
    let mut limiter = MockRateLimiter::new();
    limiter.expect_check().returning(|_, _| {
        Err(RateLimitError::Unavailable {
            backend: "mock",
            source: "connection refused".into(),
        })
    });
    let err = service(silent_model(), MockHistoryStore::new(), Some(limiter), None)
        .send(SendRequest::new(user(), "hello"))
        .await
        .unwrap_err();
    assert!(matches!(err, ChatError::RateLimiter(_)), "{err:?}");
    assert_eq!(err.http_status(), 503);
}

#[tokio::test]
async fn usage_is_charged_to_the_budget_after_the_reply_is_stored() {
    let mut budget = MockRateLimiter::new();
    let mut seq = mockall::Sequence::new();
    budget
        .expect_check()
        .with(eq("203.0.113.9"), eq(0))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(decision(true)));
    budget
        .expect_charge()
        .with(eq("203.0.113.9"), eq(10))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(decision(true)));
    let reply = service(
        model_answering("hi"),
        store_accepting_appends(),
        None,
        Some(budget),
    )
    .send(SendRequest::new(user(), "hello").with_rate_key("203.0.113.9"))
    .await
    .unwrap();
    assert_eq!(reply.usage, Usage::new(7, 3));
}

#[tokio::test]
async fn a_failed_charge_still_returns_the_stored_reply() {
    let mut budget = MockRateLimiter::new();
    budget.expect_check().returning(|_, _| Ok(decision(true)));
    budget.expect_charge().times(1).returning(|_, _| {
        Err(RateLimitError::Unavailable {
            backend: "mock",
            source: "gone".into(),
        })
    });
    let reply = service(
        model_answering("kept"),
        store_accepting_appends(),
        None,
        Some(budget),
    )
    .send(SendRequest::new(user(), "hello"))
    .await
    .unwrap();
    assert_eq!(reply.text(), "kept");
}

#[tokio::test]
async fn a_store_failure_after_the_model_is_reported_and_charges_nothing() {
    let mut store = MockHistoryStore::new();
    store.expect_append().times(1).returning(|_, _| {
        Err(StoreError::Unavailable {
            backend: "mock",
            source: "down".into(),
        })
    });
    let mut budget = MockRateLimiter::new();
    budget.expect_check().returning(|_, _| Ok(decision(true)));
    budget.expect_charge().never();
    let err = service(model_answering("lost?"), store, None, Some(budget))
        .send(SendRequest::new(user(), "hello"))
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 503);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_known_message_uid_replays_without_limits_or_model() {
    let uid = MessageId::new();
    let chat_id = ChatId::new();
    let question = stored_message(&NewMessage::user("hello").with_id(uid), chat_id, 1);
    let answer = stored_message(
        &NewMessage::assistant("stored answer")
            .with_id(uid.reply_id())
            .replying_to(uid)
            .with_model("mock-model")
            .with_usage(Usage::new(1, 2)),
        chat_id,
        2,
    );
    let mut store = MockHistoryStore::new();
    store
        .expect_get_message()
        .with(eq(user()), eq(uid))
        .returning(move |_, _| Ok(question.clone()));
    store
        .expect_get_message()
        .with(eq(user()), eq(uid.reply_id()))
        .returning(move |_, _| Ok(answer.clone()));
    store.expect_append().never();
    let mut limiter = MockRateLimiter::new();
    limiter.expect_check().never();
    let reply = service(silent_model(), store, Some(limiter), None)
        .send(SendRequest::new(user(), "hello").with_message_uid(uid))
        .await
        .unwrap();
    assert!(reply.replayed);
    assert_eq!(reply.text(), "stored answer");
    assert_eq!(
        (reply.chat_id, reply.message_uid, reply.response_session_id),
        (chat_id, uid, uid.reply_id())
    );
    assert_eq!(reply.usage, Usage::new(1, 2));
}

#[tokio::test]
async fn the_model_gets_history_prompt_and_merged_settings() {
    let chat_id = ChatId::new();
    let conversation = Conversation {
        id: chat_id,
        user_id: user(),
        title: "t".into(),
        system_prompt: Some("conversation prompt".into()),
        metadata: Metadata::new(),
        message_count: 2,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    let history: Vec<ContextMessage> = [
        stored_message(&NewMessage::user("first question"), chat_id, 1),
        stored_message(&NewMessage::assistant("first answer"), chat_id, 2),
    ]
    .into_iter()
    .map(ContextMessage::from)
    .collect();
    let mut store = store_accepting_appends();
    store
        .expect_get_conversation()
        .returning(move |_, _| Ok(conversation.clone()));
    store
        .expect_recent_context()
        .with(eq(user()), eq(chat_id), eq(20))
        .returning(move |_, _, _| Ok(history.clone()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut model = MockChatModel::new();
    model
        .expect_model_id()
        .return_const("mock-model".to_owned());
    let recorder = Arc::clone(&seen);
    model.expect_converse().times(2).returning(move |request| {
        recorder.lock().unwrap().push(request);
        Ok(ModelResponse {
            reasoning: Vec::new(),
            text: "ok".into(),
            structured: None,
            tool_calls: Vec::new(),
            citations: Vec::new(),
            usage: Usage::new(1, 1),
            stop_reason: StopReason::EndTurn,
            latency: Duration::ZERO,
        })
    });
    let policy = ChatPolicy::default()
        .with_inference(InferenceConfig {
            max_tokens: Some(512),
            temperature: Some(0.2),
            ..Default::default()
        })
        .with_system_prompt("policy prompt");
    let service = ChatService::builder(Arc::new(model), Arc::new(store))
        .policy(policy)
        .build();
    let over = InferenceConfig {
        temperature: Some(0.9),
        top_p: Some(0.5),
        ..Default::default()
    };
    service
        .send(
            SendRequest::new(user(), "second question")
                .in_chat(chat_id)
                .with_inference(over),
        )
        .await
        .unwrap();
    service
        .send(
            SendRequest::new(user(), "third")
                .in_chat(chat_id)
                .with_system_prompt("send prompt"),
        )
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let first = &seen[0];
    assert_eq!(
        first.messages,
        vec![
            crate::ModelMessage::user("first question"),
            crate::ModelMessage::assistant("first answer"),
            crate::ModelMessage::user("second question"),
        ]
    );
    assert_eq!(first.system.as_deref(), Some("conversation prompt"));
    assert_eq!(first.inference.max_tokens, Some(512));
    assert_eq!(first.inference.temperature, Some(0.9));
    assert_eq!(first.inference.top_p, Some(0.5));
    assert_eq!(seen[1].system.as_deref(), Some("send prompt"));
    assert_eq!(seen[1].inference.temperature, Some(0.2));
}

#[tokio::test]
async fn bad_messages_are_refused_before_anything_is_called() {
    let mut store = MockHistoryStore::new();
    store.expect_append().never();
    store.expect_get_message().never();
    let service = ChatService::builder(Arc::new(silent_model()), Arc::new(store))
        .policy(ChatPolicy::default().with_max_message_chars(10))
        .build();
    for (text, reason) in [
        ("", "must not be empty"),
        (" \n\t ", "must not be empty"),
        ("12345678901", "must be at most 10 characters"),
    ] {
        match service.send(SendRequest::new(user(), text)).await {
            Err(ChatError::InvalidInput(e)) => {
                assert_eq!(e.field, "message");
                assert_eq!(e.reason, reason);
            }
            other => panic!("expected InvalidInput for {text:?}, got {other:?}"),
        }
    }
    // Ten characters of emoji are within a ten-character limit.
    let mut model = MockChatModel::new();
    model.expect_model_id().return_const("m".to_owned());
    model
        .expect_converse()
        .times(1)
        .returning(|_| Err(ModelError::timeout("t")));
    let service = ChatService::builder(Arc::new(model), Arc::new(MockHistoryStore::new()))
        .policy(ChatPolicy::default().with_max_message_chars(10))
        .build();
    let err = service
        .send(SendRequest::new(user(), "🦀".repeat(10)))
        .await
        .unwrap_err();
    assert!(matches!(err, ChatError::Model(ModelError::Timeout { .. })));
}

#[test]
fn titles_are_the_first_line_shortened() {
    assert_eq!(title_of("  Hello there\nsecond line", 60), "Hello there");
    assert_eq!(title_of("abcdef", 3), "abc…");
    assert_eq!(title_of("abc", 3), "abc");
}
