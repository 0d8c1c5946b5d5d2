//! The library calls the hosts (server, CLI, Lambda) are built on: stateless sends,
//! structured output and personas, per-send options, the audit trail, export and offset
//! paging — on the real in-memory store and limiter.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::Write;
use std::sync::{Arc, Mutex};

use bedrock_chat_core::{
    AppendRequest, ChatError, ChatService, ExportFormat, GuardrailConfig, HistoryStore,
    HistoryStoreExt, ListOptions, MockChatModel, ModelError, ModelResponse, NewConversation,
    NewMessage, OfflineChatModel, Quota, SendRequest, StopReason, Usage, UserId, AUDIT_TARGET,
};
use bedrock_chat_ratelimit::InMemoryRateLimiter;
use bedrock_chat_store::InMemoryHistoryStore;
use futures::TryStreamExt;
use serde::Deserialize;

fn user(name: &str) -> UserId {
    UserId::new(name).expect("a valid user id")
}

fn offline(store: &InMemoryHistoryStore) -> ChatService {
    ChatService::builder(Arc::new(OfflineChatModel::new()), Arc::new(store.clone())).build()
}

#[tokio::test]
async fn a_stateless_send_answers_and_stores_nothing() {
    let store = InMemoryHistoryStore::new();
    let limiter = InMemoryRateLimiter::new(Quota::per_minute(2).unwrap());
    let service = ChatService::builder(Arc::new(OfflineChatModel::new()), Arc::new(store.clone()))
        .request_limiter(Arc::new(limiter))
        .build();
    let visitor = user("anonymous");
    let request = SendRequest::new(visitor.clone(), "Is the A train running?")
        .with_system_prompt("You answer questions about the subway.")
        .with_rate_key("192.0.2.7");
    let reply = service.send_stateless(request.clone()).await.unwrap();
    assert!(reply.text.contains("offline model"));
    assert_eq!(reply.model, service.model().model_id());
    assert_eq!(reply.rate_limit.unwrap().remaining, 1);
    assert_eq!(store.usage(&visitor).await.unwrap().conversations, 0);
    assert!(store
        .list_conversations(&visitor, ListOptions::first(10))
        .await
        .unwrap()
        .items
        .is_empty());

    // It counts against the same request limit as a send.
    service.send_stateless(request.clone()).await.unwrap();
    let refused = service.send_stateless(request).await.unwrap_err();
    assert!(matches!(refused, ChatError::RateLimited(_)));
}

#[tokio::test]
async fn a_stateless_send_refuses_a_conversation_and_empty_text() {
    let store = InMemoryHistoryStore::new();
    let service = offline(&store);
    let alice = user("alice");
    let first = service
        .send(SendRequest::new(alice.clone(), "hello"))
        .await
        .unwrap();
    let err = service
        .send_stateless(SendRequest::new(alice.clone(), "more").in_chat(first.chat_id))
        .await
        .unwrap_err();
    assert!(matches!(&err, ChatError::InvalidInput(e) if e.field == "chat_id"));
    let err = service
        .send_stateless(SendRequest::new(alice, "  \n "))
        .await
        .unwrap_err();
    assert!(matches!(&err, ChatError::InvalidInput(e) if e.field == "message"));
}

#[tokio::test]
async fn the_budget_key_is_charged_instead_of_the_rate_key() {
    let store = InMemoryHistoryStore::new();
    let budget = InMemoryRateLimiter::new(Quota::per_day(1_000_000).unwrap());
    let service = ChatService::builder(Arc::new(OfflineChatModel::new()), Arc::new(store.clone()))
        .token_budget(Arc::new(budget.clone()))
        .build();
    let reply = service
        .send(
            SendRequest::new(user("cookie-123"), "hello")
                .with_rate_key("203.0.113.5")
                .with_budget_key("cookie-123"),
        )
        .await
        .unwrap();
    use bedrock_chat_core::RateLimiter;
    let by_identity = budget.check("cookie-123", 0).await.unwrap();
    assert_eq!(by_identity.remaining, 1_000_000 - reply.usage.total_tokens);
    let by_ip = budget.check("203.0.113.5", 0).await.unwrap();
    assert_eq!(by_ip.remaining, 1_000_000);
}

#[tokio::test]
async fn a_per_send_guardrail_overrides_the_policy() {
    let mut model = MockChatModel::new();
    model.expect_model_id().return_const("mock".to_owned());
    model
        .expect_converse()
        .withf(|request| {
            request.guardrail.as_ref().map(|g| g.identifier.as_str()) == Some("gr-send")
        })
        .times(1)
        .returning(|_| {
            Ok(ModelResponse {
                reasoning: Vec::new(),
                text: "screened".into(),
                structured: None,
                tool_calls: Vec::new(),
                citations: Vec::new(),
                usage: Usage::new(1, 1),
                stop_reason: StopReason::EndTurn,
                latency: Default::default(),
            })
        });
    let service = ChatService::builder(Arc::new(model), Arc::new(InMemoryHistoryStore::new()))
        .policy(
            bedrock_chat_core::ChatPolicy::default()
                .with_guardrail(GuardrailConfig::new("gr-policy", "1")),
        )
        .build();
    let reply = service
        .send(
            SendRequest::new(user("ann"), "hi")
                .with_guardrail(GuardrailConfig::new("gr-send", "DRAFT")),
        )
        .await
        .unwrap();
    assert_eq!(reply.text(), "screened");
}

#[derive(Debug, Deserialize)]
struct Itinerary {
    city: String,
    days: u32,
}

#[tokio::test]
async fn structured_output_is_deserialized_and_limited_like_a_send() {
    let store = InMemoryHistoryStore::new();
    let limiter = InMemoryRateLimiter::new(Quota::per_minute(1).unwrap());
    let service = ChatService::builder(Arc::new(OfflineChatModel::new()), Arc::new(store.clone()))
        .request_limiter(Arc::new(limiter))
        .build();
    let schema = bedrock_chat_core::OutputSchema {
        name: "itinerary".into(),
        description: "A trip".into(),
        schema: serde_json::json!({
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"]
        }),
    };
    let made = service
        .generate_structured::<Itinerary>(
            SendRequest::new(user("bo"), "Three days in Lisbon"),
            schema.clone(),
        )
        .await
        .unwrap();
    assert!(!made.value.city.is_empty());
    let _ = made.value.days;
    assert!(made.usage.total_tokens > 0);
    let refused = service
        .generate_structured::<Itinerary>(SendRequest::new(user("bo"), "again"), schema)
        .await
        .unwrap_err();
    assert!(matches!(refused, ChatError::RateLimited(_)));
}

#[tokio::test]
async fn a_structured_reply_that_does_not_fit_is_a_schema_violation() {
    let mut model = MockChatModel::new();
    model.expect_model_id().return_const("mock".to_owned());
    model.expect_converse().returning(|_| {
        Ok(ModelResponse {
            reasoning: Vec::new(),
            text: "{}".into(),
            structured: Some(serde_json::json!({"city": 7})),
            tool_calls: Vec::new(),
            citations: Vec::new(),
            usage: Usage::new(1, 1),
            stop_reason: StopReason::ToolUse,
            latency: Default::default(),
        })
    });
    let service =
        ChatService::builder(Arc::new(model), Arc::new(InMemoryHistoryStore::new())).build();
    let err = service
        .create_persona(SendRequest::new(user("cy"), "a pirate"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChatError::Model(ModelError::SchemaViolation { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_persona_is_made_and_a_conversation_starts_with_it() {
    let store = InMemoryHistoryStore::new();
    let service = offline(&store);
    let link = user("link");
    let made = service
        .create_persona(SendRequest::new(
            link.clone(),
            "A cheerful pirate who loves maps",
        ))
        .await
        .unwrap();
    let persona = made.persona;
    assert!(!persona.name.trim().is_empty());
    assert!(!persona.system_prompt.trim().is_empty());

    let conversation = service.start_conversation(&link, &persona).await.unwrap();
    assert_eq!(conversation.title, persona.name);
    assert_eq!(
        conversation.system_prompt.as_deref(),
        Some(persona.system_prompt.as_str())
    );
    assert_eq!(conversation.metadata["persona"]["name"], persona.name);
    assert_eq!(conversation.message_count, 0);

    // Chatting in it uses the persona's system prompt.
    let reply = service
        .send(SendRequest::new(link.clone(), "Ahoy").in_chat(conversation.id))
        .await
        .unwrap();
    assert_eq!(reply.chat_id, conversation.id);
    // Another user cannot see it.
    assert!(store
        .get_conversation(&user("zed"), conversation.id)
        .await
        .is_err());
}

/// Captures what `tracing` writes, as JSON lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn audit_events(captured: &Captured) -> Vec<serde_json::Value> {
    let bytes = captured.0.lock().unwrap().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| event["target"] == AUDIT_TARGET)
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn every_model_call_makes_one_audit_event_without_message_text() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = InMemoryHistoryStore::new();
    let service = offline(&store);
    let eve = user("eve");
    let reply = service
        .send(SendRequest::new(eve.clone(), "secret plans").with_request_id("req-1"))
        .await
        .unwrap();
    service
        .send_stateless(SendRequest::new(eve.clone(), "secret too").with_request_id("req-2"))
        .await
        .unwrap();
    service
        .create_persona(SendRequest::new(eve, "a spy").with_request_id("req-3"))
        .await
        .unwrap();

    let events = audit_events(&captured);
    assert_eq!(events.len(), 3, "{events:#?}");
    let send = &events[0];
    assert_eq!(send["operation"], "send");
    assert_eq!(send["user"], "eve");
    assert_eq!(send["request_id"], "req-1");
    assert_eq!(send["chat_id"], reply.chat_id.to_string());
    assert_eq!(send["model"], reply.model);
    assert_eq!(send["input_tokens"], reply.usage.input_tokens);
    assert_eq!(send["output_tokens"], reply.usage.output_tokens);
    assert_eq!(send["outcome"], "ok");
    assert!(send.get("latency_ms").is_some());
    assert_eq!(events[1]["operation"], "stateless");
    assert_eq!(events[1]["request_id"], "req-2");
    assert_eq!(events[2]["operation"], "structured");
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("secret"), "no message text unless configured");
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_call_is_audited_as_an_error() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut model = MockChatModel::new();
    model.expect_model_id().return_const("mock".to_owned());
    model
        .expect_converse()
        .returning(|_| Err(ModelError::throttled("slow down", None)));
    let service =
        ChatService::builder(Arc::new(model), Arc::new(InMemoryHistoryStore::new())).build();
    service
        .send(SendRequest::new(user("fay"), "hi").with_request_id("req-9"))
        .await
        .unwrap_err();
    let events = audit_events(&captured);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["outcome"], "error");
    assert_eq!(events[0]["request_id"], "req-9");
    assert_eq!(events[0]["retryable"], true);
}

async fn conversation_with(
    store: &InMemoryHistoryStore,
    owner: &UserId,
    n: usize,
) -> NewConversation {
    let new = NewConversation::new("A long *talk*").with_system_prompt("Be kind.\nAlways.");
    let messages = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                NewMessage::user(format!("question {i} <b>\"quoted\"</b>"))
            } else {
                NewMessage::assistant(format!("answer {i} 🦀")).with_model("m")
            }
        })
        .collect();
    store
        .append(
            owner,
            AppendRequest::create_if_missing(new.clone(), messages),
        )
        .await
        .unwrap();
    new
}

#[tokio::test]
async fn export_as_json_pages_through_every_message() {
    let store = InMemoryHistoryStore::new();
    let gus = user("gus");
    let chat = conversation_with(&store, &gus, 451).await;
    let text: String = store
        .export_conversation(&gus, chat.id, ExportFormat::Json)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["conversation"]["id"], chat.id.to_string());
    let messages = doc["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 451);
    assert_eq!(messages[0]["seq"], 1);
    assert_eq!(messages[450]["seq"], 451);
    assert_eq!(messages[1]["content"], "answer 1 🦀");
}

#[tokio::test]
async fn export_as_markdown_is_a_transcript() {
    let store = InMemoryHistoryStore::new();
    let hal = user("hal");
    let chat = conversation_with(&store, &hal, 3).await;
    let text: String = store
        .export_conversation(&hal, chat.id, ExportFormat::Markdown)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(text.starts_with("# A long *talk*\n"));
    assert!(text.contains("> Be kind.\n> Always.\n"));
    assert!(text.contains("**User**"));
    assert!(text.contains("**Assistant (m)**"));
    assert!(text.contains("answer 1 🦀"));
    let first = text.find("question 0").unwrap();
    let last = text.find("question 2").unwrap();
    assert!(first < last);
}

#[tokio::test]
async fn export_of_another_users_conversation_is_not_found() {
    let store = InMemoryHistoryStore::new();
    let chat = conversation_with(&store, &user("ivy"), 2).await;
    let err = store
        .export_conversation(&user("jay"), chat.id, ExportFormat::Json)
        .await
        .err()
        .unwrap();
    assert!(matches!(
        err,
        bedrock_chat_core::StoreError::NotFound { .. }
    ));
}

#[tokio::test]
async fn offset_paging_walks_the_keyset_listing() {
    let store = InMemoryHistoryStore::new();
    let kay = user("kay");
    let mut ids = Vec::new();
    for _ in 0..25 {
        ids.push(conversation_with(&store, &kay, 1).await.id);
    }
    ids.reverse(); // newest first
    let page = store
        .list_conversations_at_offset(&kay, 10, 5)
        .await
        .unwrap();
    let got: Vec<_> = page.items.iter().map(|c| c.id).collect();
    assert_eq!(got, ids[10..15]);
    assert!(page.next_cursor.is_some());
    let past_the_end = store
        .list_conversations_at_offset(&kay, 30, 5)
        .await
        .unwrap();
    assert!(past_the_end.items.is_empty());
    assert!(store
        .list_conversations_at_offset(&kay, 10_001, 5)
        .await
        .is_err());
    assert!(store
        .list_conversations_at_offset(&kay, 0, 0)
        .await
        .is_err());
}
