//! Reasoning end to end: a reasoning budget through `ChatService` on `BedrockChatModel` and
//! `FakeBedrock` (through the real AWS SDK) and the in-memory store, and on the offline
//! model.
#![cfg(all(feature = "bedrock", feature = "testkit"))]

use std::sync::Arc;
use std::time::Duration;

use aws_smithy_types::{Document, Number};
use bedrock_chat_core::bedrock::BedrockConfig;
use bedrock_chat_core::offline::OFFLINE_REASONING_SIGNATURE;
use bedrock_chat_core::testkit::{FakeBedrock, FakeReply, Fault};
use bedrock_chat_core::{
    ChatError, ChatModel, ChatReply, ChatService, HistoryStore, InferenceConfig, MessageId,
    ModelError, ModelMessage, ModelRequest, OfflineChatModel, Part, SendRequest, StreamEvent,
    UserId,
};
use bedrock_chat_store::InMemoryHistoryStore;
use futures::StreamExt;
use serde_json::{json, Value};

const CLAUDE: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";

fn alice() -> UserId {
    UserId::new("alice").expect("a valid user id")
}

fn config(model: &str) -> BedrockConfig {
    BedrockConfig::new(model).with_backoff(Duration::from_millis(5), Duration::from_millis(50))
}

fn thinking(budget: u32) -> InferenceConfig {
    InferenceConfig::new()
        .with_max_tokens(4096)
        .with_reasoning_budget(budget)
}

fn last_body(fake: &FakeBedrock) -> Value {
    fake.last_request().expect("a request was made").body
}

fn service(model: Arc<dyn ChatModel>, store: &InMemoryHistoryStore) -> ChatService {
    ChatService::builder(model, Arc::new(store.clone())).build()
}

/// The reply's reasoning part: its text and signature.
fn signed_reasoning(reply: &ChatReply) -> (String, String) {
    match reply.answer.parts.as_slice() {
        [Part::Reasoning {
            text,
            signature: Some(signature),
        }, Part::Text { text: answer, .. }] => {
            assert_eq!(answer, reply.text());
            (text.clone(), signature.clone())
        }
        other => panic!("not [signed reasoning, text]: {other:?}"),
    }
}

#[tokio::test]
async fn streamed_reasoning_comes_before_the_answer_and_is_stored_with_its_signature() {
    let fake = FakeBedrock::start().await.unwrap();
    let store = InMemoryHistoryStore::new();
    let service = service(Arc::new(fake.chat_model(config(CLAUDE))), &store);

    let events: Vec<StreamEvent> = service
        .send_stream(
            SendRequest::new(alice(), "Why is the sky blue?").with_inference(thinking(2048)),
        )
        .await
        .unwrap()
        .collect()
        .await;

    let body = last_body(&fake);
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 2048}}),
        "{body}"
    );
    assert!(body["inferenceConfig"].get("temperature").is_none());
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| match event {
            StreamEvent::Started { .. } => "started",
            StreamEvent::Reasoning(_) => "reasoning",
            StreamEvent::Delta(_) => "delta",
            StreamEvent::Completed(_) => "completed",
            StreamEvent::Failed(error) => panic!("the send failed: {error}"),
            _ => "other",
        })
        .collect();
    let first_delta = kinds.iter().position(|k| *k == "delta").unwrap();
    assert_eq!(kinds[0], "started");
    assert!(kinds[1..first_delta].iter().all(|k| *k == "reasoning"));
    assert!(first_delta > 2, "reasoning in several pieces: {kinds:?}");
    assert!(kinds[first_delta..kinds.len() - 1]
        .iter()
        .all(|k| *k == "delta"));
    assert_eq!(kinds.last(), Some(&"completed"));

    let reasoning: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Reasoning(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let answer: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasoning, "Thinking about: Why is the sky blue?");
    assert_eq!(answer, "Why is the sky blue?");

    let Some(StreamEvent::Completed(reply)) = events.last() else {
        unreachable!()
    };
    assert_eq!(reply.reasoning().as_deref(), Some(reasoning.as_str()));
    assert_eq!(reply.text(), answer);
    let (text, signature) = signed_reasoning(reply);
    assert_eq!(text, reasoning);
    assert!(!signature.is_empty());
    // Reasoning tokens count as output: the answer alone is 5 tokens.
    assert_eq!(
        reply.usage.output_tokens,
        (reasoning.len() + answer.len()).div_ceil(4) as u64
    );
    let stored = store
        .get_message(&alice(), reply.response_session_id)
        .await
        .unwrap();
    assert_eq!(stored.parts, reply.answer.parts, "stored byte for byte");
    assert_eq!(stored.content, answer);
}

#[tokio::test]
async fn a_plain_send_keeps_the_reasoning_and_the_next_turn_sends_it_back_signed() {
    let fake = FakeBedrock::start().await.unwrap();
    let store = InMemoryHistoryStore::new();
    let service = service(Arc::new(fake.chat_model(config(CLAUDE))), &store);

    let first = service
        .send(SendRequest::new(alice(), "What is 6 x 7?").with_inference(thinking(1024)))
        .await
        .unwrap();
    assert_eq!(
        first.reasoning().as_deref(),
        Some("Thinking about: What is 6 x 7?")
    );
    let (text, signature) = signed_reasoning(&first);

    // The next turn, without reasoning this time: the stored reasoning goes back as it was.
    let second = service
        .send(SendRequest::new(alice(), "And 7 x 8?").in_chat(first.chat_id))
        .await
        .unwrap();
    assert_eq!(second.reasoning(), None);
    assert!(
        second.answer.parts.is_empty(),
        "a plain answer has no parts"
    );
    let body = last_body(&fake);
    assert!(body.get("additionalModelRequestFields").is_none(), "{body}");
    let blocks = body["messages"][1]["content"].as_array().unwrap();
    assert_eq!(
        blocks[0],
        json!({"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}}),
        "{body}"
    );
    assert_eq!(blocks[1], json!({"text": "What is 6 x 7?"}));
    // Then the prompt-cache point that follows the turn before the last.
    assert!(blocks[2].get("cachePoint").is_some(), "{body}");
    assert_eq!(blocks.len(), 3);
}

#[tokio::test]
async fn scripted_reasoning_is_answered_and_a_replay_streams_it_again() {
    let fake = FakeBedrock::start().await.unwrap();
    let store = InMemoryHistoryStore::new();
    let service = service(Arc::new(fake.chat_model(config(CLAUDE))), &store);
    fake.push_reply(FakeReply::text("42").with_reasoning("Six times seven."));
    let uid = MessageId::new();
    let request = SendRequest::new(alice(), "The answer?")
        .with_message_uid(uid)
        .with_inference(thinking(1024));

    let reply = service.send(request.clone()).await.unwrap();
    assert_eq!(reply.reasoning().as_deref(), Some("Six times seven."));
    assert_eq!(reply.text(), "42");

    let events: Vec<StreamEvent> = service.send_stream(request).await.unwrap().collect().await;
    assert_eq!(fake.request_count(), 1, "replayed, not called again");
    assert!(matches!(&events[1], StreamEvent::Reasoning(r) if r == "Six times seven."));
    assert!(matches!(&events[2], StreamEvent::Delta(t) if t == "42"));
    assert!(matches!(&events[3], StreamEvent::Completed(r) if r.replayed));
}

#[tokio::test]
async fn budgets_that_break_bedrocks_rules_are_refused_before_any_call() {
    let fake = FakeBedrock::start().await.unwrap();
    let store = InMemoryHistoryStore::new();
    let service = service(Arc::new(fake.chat_model(config(CLAUDE))), &store);
    let cases = [
        (
            InferenceConfig::new().with_reasoning_budget(1023),
            "inference.reasoning_budget",
        ),
        (
            InferenceConfig::new()
                .with_max_tokens(2048)
                .with_reasoning_budget(2048),
            "inference.max_tokens",
        ),
        (
            thinking(1024).with_temperature(0.5),
            "inference.temperature",
        ),
        (thinking(1024).with_top_p(0.9), "inference.top_p"),
    ];
    for (inference, field) in cases {
        let request = SendRequest::new(alice(), "hi").with_inference(inference.clone());
        for error in [
            service.send(request.clone()).await.unwrap_err(),
            service.send_stream(request).await.unwrap_err(),
        ] {
            match error {
                ChatError::Model(ModelError::InvalidRequest { message, .. }) => {
                    assert!(message.contains(field), "{inference:?}: {message}")
                }
                other => panic!("{inference:?}: unexpected {other:?}"),
            }
        }
    }
    assert_eq!(fake.request_count(), 0);
    assert_eq!(store.usage(&alice()).await.unwrap().conversations, 0);
}

#[tokio::test]
async fn a_stream_that_fails_mid_reasoning_stores_nothing() {
    let fake = FakeBedrock::start().await.unwrap();
    let store = InMemoryHistoryStore::new();
    let service = service(Arc::new(fake.chat_model(config(CLAUDE))), &store);
    fake.push_fault(Fault::exception_after(
        2,
        "modelStreamErrorException",
        "broke off",
    ));
    let events: Vec<StreamEvent> = service
        .send_stream(SendRequest::new(alice(), "Think hard").with_inference(thinking(1024)))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(matches!(&events[1], StreamEvent::Reasoning(t) if t == "Thinking "));
    assert!(matches!(&events[2], StreamEvent::Reasoning(t) if t == "about: "));
    assert!(
        matches!(
            &events[3],
            StreamEvent::Failed(ChatError::Model(ModelError::ModelFailure { .. }))
        ),
        "{events:?}"
    );
    assert_eq!(events.len(), 4);
    let usage = store.usage(&alice()).await.unwrap();
    assert_eq!((usage.conversations, usage.messages), (0, 0));
}

#[tokio::test]
async fn the_fake_refuses_thinking_as_bedrock_does() {
    let fake = FakeBedrock::start().await.unwrap();
    let ask = || ModelRequest::new([ModelMessage::user("hi")]);

    // An older Claude gets the field and Bedrock's refusal.
    let old = fake.chat_model(config("anthropic.claude-3-haiku-20240307-v1:0"));
    let error = old
        .converse(ask().with_inference(thinking(1024)))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ModelError::InvalidRequest { message, .. } if message.contains("does not support extended thinking")),
        "{error:?}"
    );

    // Another family gets no reasoning field, and answers without reasoning.
    let nova = fake.chat_model(config("amazon.nova-micro-v1:0"));
    let reply = nova
        .converse(ask().with_inference(thinking(1024).with_temperature(0.3)))
        .await
        .unwrap();
    assert!(reply.reasoning.is_empty());
    assert!(last_body(&fake)
        .get("additionalModelRequestFields")
        .is_none());

    // The fake's own checks, for SDKs that do not check first.
    let client = fake.client();
    let message = aws_sdk_bedrockruntime::types::Message::builder()
        .role(aws_sdk_bedrockruntime::types::ConversationRole::User)
        .content(aws_sdk_bedrockruntime::types::ContentBlock::Text(
            "hi".into(),
        ))
        .build()
        .unwrap();
    let cases = [
        (
            json!({"type": "enabled", "budget_tokens": 100}),
            None,
            "1024",
        ),
        (
            json!({"type": "enabled", "budget_tokens": 2000}),
            Some((1000, None)),
            "must be greater than",
        ),
        (
            json!({"type": "enabled", "budget_tokens": 2000}),
            Some((4000, Some(0.5))),
            "temperature",
        ),
    ];
    for (thinking, inference, expected) in cases {
        let fields = document(json!({ "thinking": thinking }));
        let inference = inference.map(|(max, temperature)| {
            aws_sdk_bedrockruntime::types::InferenceConfiguration::builder()
                .max_tokens(max)
                .set_temperature(temperature)
                .build()
        });
        let error = client
            .converse()
            .model_id(CLAUDE)
            .messages(message.clone())
            .set_inference_config(inference)
            .additional_model_request_fields(fields)
            .send()
            .await
            .unwrap_err();
        let text = format!("{:?}", error.into_service_error());
        assert!(
            text.contains("ValidationException") && text.contains(expected),
            "{expected}: {text}"
        );
    }
}

/// A JSON object of strings and non-negative integers as the SDK's `Document`.
fn document(value: Value) -> Document {
    match value {
        Value::Object(map) => Document::Object(
            map.into_iter()
                .map(|(key, value)| (key, document(value)))
                .collect(),
        ),
        Value::String(s) => Document::String(s),
        Value::Number(n) => {
            Document::Number(Number::PosInt(n.as_u64().expect("a non-negative integer")))
        }
        other => panic!("not needed here: {other}"),
    }
}

#[tokio::test]
async fn reasoning_sent_back_without_its_signature_is_refused() {
    let fake = FakeBedrock::start().await.unwrap();
    let model = fake.chat_model(config(CLAUDE));
    let request = ModelRequest::new([
        ModelMessage::user("q1"),
        ModelMessage::assistant("").with_parts(vec![
            Part::Reasoning {
                text: "thought".into(),
                signature: None,
            },
            Part::text("a1"),
        ]),
        ModelMessage::user("q2"),
    ]);
    let error = model.converse(request).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::InvalidRequest { message, .. } if message.contains("signature")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_offline_model_reasons_when_asked() {
    let store = InMemoryHistoryStore::new();
    let service = service(Arc::new(OfflineChatModel::new()), &store);

    let events: Vec<StreamEvent> = service
        .send_stream(SendRequest::new(alice(), "Hello").with_inference(thinking(1024)))
        .await
        .unwrap()
        .collect()
        .await;
    let first_delta = events
        .iter()
        .position(|e| matches!(e, StreamEvent::Delta(_)))
        .unwrap();
    assert!(first_delta > 1);
    assert!(events[1..first_delta]
        .iter()
        .all(|e| matches!(e, StreamEvent::Reasoning(_))));
    let Some(StreamEvent::Completed(reply)) = events.last() else {
        panic!("{events:?}")
    };
    let reasoning = reply.reasoning().unwrap();
    assert!(
        reasoning.starts_with("Reasoning (offline model): "),
        "{reasoning}"
    );
    let (_, signature) = signed_reasoning(reply);
    assert_eq!(signature, OFFLINE_REASONING_SIGNATURE);

    let plain = service
        .send(SendRequest::new(alice(), "Hello").in_chat(reply.chat_id))
        .await
        .unwrap();
    assert_eq!(plain.reasoning(), None);
    assert!(plain.answer.parts.is_empty());
}

#[tokio::test]
async fn redacted_reasoning_is_kept_never_shown_and_sent_back_unchanged() {
    let fake = FakeBedrock::start().await.unwrap();
    let store = InMemoryHistoryStore::new();
    let service = service(Arc::new(fake.chat_model(config(CLAUDE))), &store);
    let opaque = b"\x00encrypted reasoning\xff".to_vec();

    for streamed in [false, true] {
        fake.push_reply(
            FakeReply::text("The answer.")
                .with_redacted_reasoning(opaque.clone())
                .with_reasoning("Visible thought."),
        );
        let request = SendRequest::new(alice(), "Tell me").with_inference(thinking(2048));
        let reply = match streamed {
            false => service.send(request).await.unwrap(),
            true => {
                let events: Vec<StreamEvent> =
                    service.send_stream(request).await.unwrap().collect().await;
                let shown: String = events
                    .iter()
                    .filter_map(|e| match e {
                        StreamEvent::Reasoning(text) => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                assert_eq!(shown, "Visible thought.", "the redacted block is not shown");
                match events.into_iter().last() {
                    Some(StreamEvent::Completed(reply)) => *reply,
                    other => panic!("{other:?}"),
                }
            }
        };
        let stored = store
            .get_message(&alice(), reply.response_session_id)
            .await
            .unwrap();
        let kinds: Vec<&str> = stored.parts.iter().map(Part::kind).collect();
        assert_eq!(
            kinds,
            ["redacted_reasoning", "reasoning", "text"],
            "streamed: {streamed}"
        );
        match &stored.parts[0] {
            Part::RedactedReasoning { data } => {
                assert_eq!(data.bytes().map(|b| b.to_vec()), Some(opaque.clone()))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reply.reasoning().as_deref(), Some("Visible thought."));

        // The next turn sends the encrypted block back as it came.
        service
            .send(
                SendRequest::new(alice(), "And?")
                    .in_chat(reply.chat_id)
                    .with_inference(thinking(2048)),
            )
            .await
            .unwrap();
        let body = last_body(&fake);
        let sent = &body["messages"][1]["content"][0]["reasoningContent"]["redactedContent"];
        use base64::Engine as _;
        assert_eq!(
            sent.as_str(),
            Some(
                base64::engine::general_purpose::STANDARD
                    .encode(&opaque)
                    .as_str()
            ),
            "{body}"
        );
    }
}

/// Asserts that the request `body` carries no reasoning block (as Nova requires).
fn assert_no_reasoning(body: &Value) {
    assert!(
        !body.to_string().contains("reasoningContent"),
        "no reasoning for Nova: {body}"
    );
}

/// Services on Claude (which reasons) and on Nova (which does not) sharing one history.
fn claude_and_nova(fake: &FakeBedrock) -> (ChatService, ChatService) {
    let store = InMemoryHistoryStore::new();
    let claude = service(Arc::new(fake.chat_model(config(CLAUDE))), &store);
    let nova = service(
        Arc::new(fake.chat_model(config("amazon.nova-lite-v1:0"))),
        &store,
    );
    (claude, nova)
}

#[tokio::test]
async fn a_conversation_with_reasoning_continues_on_a_model_that_does_not_reason() {
    // Claude reasons; the conversation goes on with Nova (which refuses reasoning blocks),
    // then back on Claude, which gets its reasoning back.
    let fake = FakeBedrock::start().await.unwrap();
    let (claude, nova) = claude_and_nova(&fake);
    let first = claude
        .send(SendRequest::new(alice(), "Why is the sky blue?").with_inference(thinking(2048)))
        .await
        .unwrap();
    let (reasoning, signature) = signed_reasoning(&first);

    let second = nova
        .send(SendRequest::new(alice(), "And at sunset?").in_chat(first.chat_id))
        .await
        .unwrap();
    let body = last_body(&fake);
    assert_no_reasoning(&body);
    assert_eq!(
        body["messages"][1]["content"][0],
        json!({"text": first.text()}),
        "the answer's text goes: {body}"
    );

    claude
        .send(SendRequest::new(alice(), "Thanks").in_chat(second.chat_id))
        .await
        .unwrap();
    let body = last_body(&fake);
    assert_eq!(
        body["messages"][1]["content"][0]["reasoningContent"]["reasoningText"],
        json!({"text": reasoning, "signature": signature}),
        "{body}"
    );
}

#[tokio::test]
async fn a_reply_cut_off_while_reasoning_is_left_out_for_a_model_that_does_not_reason() {
    // Claude ran out of tokens while thinking: its stored reply is reasoning and no text.
    // Nova refuses reasoning blocks and empty turns, so the reply goes and the two
    // questions reach it as one user turn.
    let fake = FakeBedrock::start().await.unwrap();
    let (claude, nova) = claude_and_nova(&fake);
    fake.push_reply(
        FakeReply::text("")
            .with_reasoning("Light scatters; the shorter wavelengths")
            .with_stop_reason("max_tokens"),
    );
    let first = claude
        .send(SendRequest::new(alice(), "Why is the sky blue?").with_inference(thinking(2048)))
        .await
        .unwrap();
    assert_eq!(first.text(), "");
    assert!(first.reasoning().is_some(), "{:?}", first.answer.parts);

    nova.send(SendRequest::new(alice(), "And at sunset?").in_chat(first.chat_id))
        .await
        .unwrap();
    let body = last_body(&fake);
    assert_no_reasoning(&body);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{body}");
    assert_eq!(messages[0]["role"], "user");
    let text = messages[0]["content"].to_string();
    assert!(
        text.contains("Why is the sky blue?") && text.contains("And at sunset?"),
        "{body}"
    );
}
