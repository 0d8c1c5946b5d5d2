//! The tool loop end to end: tools registered on `ChatService`, called by `BedrockChatModel`
//! on `FakeBedrock` (through the real AWS SDK), with the in-memory store; and on the
//! offline model.
#![cfg(all(feature = "bedrock", feature = "testkit"))]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bedrock_chat_core::bedrock::BedrockConfig;
use bedrock_chat_core::testkit::{FakeBedrock, FakeReply, Fault};
use bedrock_chat_core::tool::{Tool, ToolContext, ToolError};
use bedrock_chat_core::{
    ChatError, ChatModel, ChatPolicy, ChatService, HistoryStore, MessageId, OfflineChatModel, Part,
    SendRequest, StopReason, StreamEvent, UserId,
};
use bedrock_chat_store::InMemoryHistoryStore;
use futures::StreamExt;
use serde_json::{json, Value};

const NOVA: &str = "amazon.nova-lite-v1:0";

fn alice() -> UserId {
    UserId::new("alice").expect("a valid user id")
}

/// A clock that always says noon, and remembers who asked.
#[derive(Default)]
struct Clock {
    calls: AtomicUsize,
    seen: Mutex<Vec<ToolContext>>,
}

#[async_trait]
impl Tool for Clock {
    fn name(&self) -> &str {
        "current_time"
    }
    fn description(&self) -> &str {
        "The current time, in UTC."
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object", "properties": {}})
    }
    async fn call(&self, context: &ToolContext, _input: Value) -> Result<Value, ToolError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(context.clone());
        Ok(json!({"utc": "12:00"}))
    }
}

/// A tool that fails, or sleeps past any sensible timeout.
struct Broken {
    sleep: Option<Duration>,
}

#[async_trait]
impl Tool for Broken {
    fn name(&self) -> &str {
        "weather"
    }
    fn description(&self) -> &str {
        "The weather somewhere."
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object", "properties": {"city": {"type": "string"}}})
    }
    async fn call(&self, _: &ToolContext, _: Value) -> Result<Value, ToolError> {
        if let Some(sleep) = self.sleep {
            tokio::time::sleep(sleep).await;
        }
        Err(ToolError::new("the weather service is down"))
    }
}

struct Setup {
    fake: FakeBedrock,
    store: InMemoryHistoryStore,
    clock: Arc<Clock>,
    service: ChatService,
}

async fn setup(policy: ChatPolicy) -> Setup {
    let fake = FakeBedrock::start().await.unwrap();
    let store = InMemoryHistoryStore::new();
    let clock = Arc::new(Clock::default());
    let model = fake.chat_model(
        BedrockConfig::new(NOVA).with_backoff(Duration::from_millis(5), Duration::from_millis(20)),
    );
    let service = ChatService::builder(Arc::new(model), Arc::new(store.clone()))
        .tool(clock.clone())
        .tool(Arc::new(Broken {
            sleep: Some(Duration::from_secs(5)),
        }))
        .policy(policy)
        .build();
    Setup {
        fake,
        store,
        clock,
        service,
    }
}

fn call(name: &str) -> FakeReply {
    FakeReply::tool_use_named(name, json!({})).with_usage(10, 2)
}

/// The `toolResult` blocks of a request's last message.
fn results_sent(body: &Value) -> Vec<Value> {
    let last = body["messages"].as_array().unwrap().last().unwrap();
    last["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|block| block.get("toolResult").cloned())
        .collect()
}

fn kinds(parts: &[Part]) -> Vec<&'static str> {
    parts.iter().map(Part::kind).collect()
}

#[tokio::test]
async fn a_tool_call_runs_the_tool_and_the_model_answers_with_its_result() {
    let s = setup(ChatPolicy::default()).await;
    s.fake.push_reply(call("current_time"));
    s.fake
        .push_reply(FakeReply::text("It is noon.").with_usage(20, 3));

    let reply = s
        .service
        .send(SendRequest::new(alice(), "What time is it?").with_request_id("req-1"))
        .await
        .unwrap();

    assert_eq!(reply.text(), "It is noon.");
    assert_eq!(reply.stop_reason, Some(StopReason::EndTurn));
    assert_eq!(
        kinds(&reply.answer.parts),
        ["tool_use", "tool_result", "text"]
    );
    // Both rounds are billed.
    assert_eq!(
        (reply.usage.input_tokens, reply.usage.output_tokens),
        (30, 5)
    );
    let totals = s.store.usage(&alice()).await.unwrap();
    assert_eq!(totals.usage.total_tokens, 35);

    let requests = s.fake.requests();
    assert_eq!(requests.len(), 2);
    let offered = &requests[0].body["toolConfig"]["tools"];
    assert_eq!(offered[0]["toolSpec"]["name"], "current_time", "{offered}");
    assert!(requests[0].body["toolConfig"].get("toolChoice").is_none());
    let results = results_sent(&requests[1].body);
    assert_eq!(results[0]["content"][0]["json"], json!({"utc": "12:00"}));
    assert_eq!(results[0]["status"], "success");

    let seen = s.clock.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].user, alice());
    assert_eq!(seen[0].chat_id, reply.chat_id);
    assert_eq!(seen[0].request_id.as_deref(), Some("req-1"));
}

#[tokio::test]
async fn a_streamed_send_reports_calls_and_results_between_the_rounds() {
    let s = setup(ChatPolicy::default()).await;
    s.fake.push_reply(
        FakeReply::tool_use_named("current_time", json!({"zone": "UTC"})).with_usage(10, 2),
    );
    s.fake.push_reply(FakeReply::text("It is noon."));

    let events: Vec<StreamEvent> = s
        .service
        .send_stream(SendRequest::new(alice(), "What time is it?"))
        .await
        .unwrap()
        .collect()
        .await;

    let names: Vec<&str> = events
        .iter()
        .map(|event| match event {
            StreamEvent::Started { .. } => "started",
            StreamEvent::ToolCall(_) => "call",
            StreamEvent::ToolResult { .. } => "result",
            StreamEvent::Delta(_) => "delta",
            StreamEvent::Completed(_) => "completed",
            _ => "other",
        })
        .collect();
    assert_eq!(
        names,
        [
            "started",
            "call",
            "result",
            "delta",
            "delta",
            "delta",
            "completed"
        ]
    );
    let StreamEvent::ToolCall(call) = &events[1] else {
        unreachable!()
    };
    assert_eq!(
        (call.name.as_str(), &call.input),
        ("current_time", &json!({"zone": "UTC"}))
    );
    let StreamEvent::ToolResult {
        tool_use_id,
        output,
        is_error,
        ..
    } = &events[2]
    else {
        unreachable!()
    };
    assert_eq!(tool_use_id, &call.id);
    assert_eq!((output, *is_error), (&json!({"utc": "12:00"}), false));
    let StreamEvent::Completed(reply) = events.last().unwrap() else {
        unreachable!()
    };
    let stored = s
        .store
        .get_message(&alice(), reply.response_session_id)
        .await
        .unwrap();
    assert_eq!(kinds(&stored.parts), ["tool_use", "tool_result", "text"]);
    assert_eq!(stored.content, "It is noon.");
}

#[tokio::test]
async fn the_next_turn_sends_the_tool_rounds_back_as_bedrock_requires() {
    let s = setup(ChatPolicy::default()).await;
    s.fake.push_reply(call("current_time"));
    s.fake.push_reply(FakeReply::text("It is noon."));
    let first = s
        .service
        .send(SendRequest::new(alice(), "What time is it?"))
        .await
        .unwrap();

    // FakeBedrock refuses calls without their results, results without their calls, and
    // tool blocks without a toolConfig: this send passing is the check.
    let second = s
        .service
        .send(SendRequest::new(alice(), "Thanks!").in_chat(first.chat_id))
        .await
        .unwrap();
    assert_eq!(second.text(), "Thanks!");
    let body = s.fake.last_request().unwrap().body;
    let shape: Vec<(String, Vec<String>)> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let blocks = m["content"].as_array().unwrap();
            let kinds = blocks
                .iter()
                .filter_map(|b| b.as_object().and_then(|o| o.keys().next().cloned()))
                .collect();
            (m["role"].as_str().unwrap().to_owned(), kinds)
        })
        .collect();
    let expected: Vec<(String, Vec<String>)> = [
        ("user", vec!["text"]),
        ("assistant", vec!["toolUse"]),
        ("user", vec!["toolResult"]),
        ("assistant", vec!["text"]),
        ("user", vec!["text"]),
    ]
    .into_iter()
    .map(|(role, kinds)| {
        (
            role.to_owned(),
            kinds.into_iter().map(String::from).collect(),
        )
    })
    .collect();
    // Cache points may follow a turn's content; they are not part of the shape.
    let without_cache: Vec<(String, Vec<String>)> = shape
        .into_iter()
        .map(|(role, kinds)| {
            (
                role,
                kinds.into_iter().filter(|k| k != "cachePoint").collect(),
            )
        })
        .collect();
    assert_eq!(without_cache, expected);
}

#[tokio::test]
async fn without_the_tools_a_conversation_that_used_them_goes_on_as_text() {
    let s = setup(ChatPolicy::default()).await;
    s.fake.push_reply(call("current_time"));
    s.fake.push_reply(FakeReply::text("It is noon."));
    let first = s
        .service
        .send(SendRequest::new(alice(), "What time is it?"))
        .await
        .unwrap();

    let model = s.fake.chat_model(BedrockConfig::new(NOVA));
    let plain = ChatService::builder(Arc::new(model), Arc::new(s.store.clone())).build();
    plain
        .send(SendRequest::new(alice(), "And now?").in_chat(first.chat_id))
        .await
        .unwrap();
    let body = s.fake.last_request().unwrap().body;
    assert!(body.get("toolConfig").is_none(), "{body}");
    let text = body["messages"].to_string();
    assert!(
        text.contains("[called the tool current_time with {}]"),
        "{text}"
    );
    assert!(
        text.contains(r#"[the tool returned: {\"utc\":\"12:00\"}]"#),
        "{text}"
    );
    assert!(!text.contains("toolUse"), "{text}");
}

#[tokio::test]
async fn a_failing_unknown_or_slow_tool_is_an_error_result_not_a_failed_send() {
    let policy = ChatPolicy::default().with_tool_limits(5, Duration::from_millis(100));
    let s = setup(policy).await;
    // The model calls the broken tool, a tool that does not exist, and the slow one
    // (the broken tool sleeps 5 s: the 100 ms timeout ends it).
    s.fake
        .push_reply(FakeReply::tool_use_named("nowhere", json!({})));
    s.fake.push_reply(FakeReply::tool_use_named(
        "weather",
        json!({"city": "Oslo"}),
    ));
    s.fake.push_reply(FakeReply::text("I could not find out."));

    let reply = s
        .service
        .send(SendRequest::new(alice(), "Weather in Oslo?"))
        .await
        .unwrap();
    assert_eq!(reply.text(), "I could not find out.");
    let requests = s.fake.requests();
    let unknown = results_sent(&requests[1].body);
    assert_eq!(unknown[0]["status"], "error");
    assert_eq!(
        unknown[0]["content"][0]["text"],
        "there is no tool named `nowhere`"
    );
    let slow = results_sent(&requests[2].body);
    assert_eq!(slow[0]["status"], "error");
    assert_eq!(
        slow[0]["content"][0]["text"],
        "the tool did not answer within 0.1 s"
    );
    let errors: Vec<bool> = reply
        .answer
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolResult { is_error, .. } => Some(*is_error),
            _ => None,
        })
        .collect();
    assert_eq!(errors, [true, true]);
}

#[tokio::test]
async fn a_tool_error_goes_back_to_the_model_with_its_message() {
    let fake = FakeBedrock::start().await.unwrap();
    let store = InMemoryHistoryStore::new();
    let service = ChatService::builder(
        Arc::new(fake.chat_model(BedrockConfig::new(NOVA))),
        Arc::new(store.clone()),
    )
    .tool(Arc::new(Broken { sleep: None }))
    .build();
    fake.push_reply(FakeReply::tool_use_named(
        "weather",
        json!({"city": "Oslo"}),
    ));

    // Unscripted, FakeBedrock quotes the results it was sent.
    let reply = service
        .send(SendRequest::new(alice(), "Weather in Oslo?"))
        .await
        .unwrap();
    assert_eq!(
        reply.text(),
        "Tool results: failed: the weather service is down"
    );
}

#[tokio::test]
async fn past_the_round_limit_calls_get_an_error_and_the_model_one_last_call() {
    let policy = ChatPolicy::default().with_tool_limits(1, Duration::from_secs(5));
    let s = setup(policy).await;
    for _ in 0..3 {
        s.fake.push_reply(call("current_time"));
    }
    let reply = s
        .service
        .send(SendRequest::new(alice(), "What time is it, repeatedly?"))
        .await
        .unwrap();

    assert_eq!(s.clock.calls.load(Ordering::SeqCst), 1, "one round ran");
    assert_eq!(
        s.fake.request_count(),
        3,
        "the round, the last call, no more"
    );
    let refusal = results_sent(&s.fake.requests()[2].body);
    assert_eq!(
        refusal[0]["content"][0]["text"],
        "the limit of 1 tool rounds for one message is reached; answer with what you have"
    );
    assert_eq!(reply.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(
        kinds(&reply.answer.parts),
        [
            "tool_use",
            "tool_result",
            "tool_use",
            "tool_result",
            "tool_use",
            "tool_result"
        ]
    );
    // The stored calls are all answered, so the conversation can go on.
    s.service
        .send(SendRequest::new(alice(), "Never mind.").in_chat(reply.chat_id))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_model_failure_after_a_tool_round_stores_nothing_but_bills_the_round() {
    let s = setup(ChatPolicy::default()).await;
    s.fake.push_reply(call("current_time"));
    s.fake
        .push_fault(Fault::error("ValidationException", "something went wrong"));
    let uid = MessageId::new();

    let error = s
        .service
        .send(SendRequest::new(alice(), "What time is it?").with_message_uid(uid))
        .await
        .unwrap_err();
    assert!(matches!(error, ChatError::Model(_)), "{error:?}");
    assert!(s.store.get_message(&alice(), uid).await.is_err());
    let totals = s.store.usage(&alice()).await.unwrap();
    assert_eq!(totals.usage.total_tokens, 12, "the first round's tokens");
    assert_eq!(totals.messages, 0);

    // A retry with the same id works.
    s.fake.push_reply(call("current_time"));
    s.fake.push_reply(FakeReply::text("It is noon."));
    let reply = s
        .service
        .send(SendRequest::new(alice(), "What time is it?").with_message_uid(uid))
        .await
        .unwrap();
    assert_eq!(reply.text(), "It is noon.");
}

#[tokio::test]
async fn a_stream_that_breaks_in_the_second_round_fails_and_stores_nothing() {
    let s = setup(ChatPolicy::default()).await;
    s.fake.push_reply(call("current_time"));
    s.fake.push_fault(Fault::Exception {
        after_deltas: 1,
        exception_type: "modelStreamErrorException".into(),
        message: "the model broke".into(),
    });
    let uid = MessageId::new();
    let reply = s
        .service
        .send_stream(SendRequest::new(alice(), "What time is it?").with_message_uid(uid))
        .await
        .unwrap()
        .collect_reply()
        .await;
    assert!(reply.is_err());
    assert!(s.store.get_message(&alice(), uid).await.is_err());
}

#[tokio::test]
async fn unscripted_fake_bedrock_calls_a_tool_the_question_names() {
    let s = setup(ChatPolicy::default()).await;
    let reply = s
        .service
        .send(SendRequest::new(alice(), "What is the current time?"))
        .await
        .unwrap();
    assert_eq!(s.clock.calls.load(Ordering::SeqCst), 1);
    assert_eq!(reply.text(), r#"Tool results: {"utc":"12:00"}"#);
}

#[tokio::test]
async fn the_offline_model_calls_a_tool_the_question_names() {
    let store = InMemoryHistoryStore::new();
    let clock = Arc::new(Clock::default());
    let model: Arc<dyn ChatModel> = Arc::new(OfflineChatModel::new());
    let service = ChatService::builder(model, Arc::new(store.clone()))
        .tool(clock.clone())
        .build();
    for streamed in [false, true] {
        let request = SendRequest::new(alice(), "What is the current time?");
        let reply = match streamed {
            false => service.send(request).await.unwrap(),
            true => service
                .send_stream(request)
                .await
                .unwrap()
                .collect_reply()
                .await
                .unwrap(),
        };
        assert_eq!(
            kinds(&reply.answer.parts),
            ["tool_use", "tool_result", "text"]
        );
        assert!(
            reply.text().contains(r#"{"utc":"12:00"}"#),
            "{}",
            reply.text()
        );
    }
    assert_eq!(clock.calls.load(Ordering::SeqCst), 2);
}
