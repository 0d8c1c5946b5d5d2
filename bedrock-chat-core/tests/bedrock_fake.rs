//! `FakeBedrock` on the wire, driven by the plain `aws-sdk-bedrockruntime` client (and a raw
//! TCP socket): the InvokeModel routes, the error shape, routing, and the recording of
//! requests.
#![cfg(all(feature = "bedrock", feature = "testkit"))]

use std::time::Duration;

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, Message, ResponseStream};
use bedrock_chat_core::testkit::{FakeBedrock, FakeReply, Fault, Operation, Timing};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

async fn fake() -> FakeBedrock {
    FakeBedrock::start().await.expect("the fake starts")
}

fn anthropic_body(text: &str) -> Value {
    json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 200,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]
    })
}

fn blob(value: &Value) -> Blob {
    Blob::new(value.to_string().into_bytes())
}

#[tokio::test]
async fn invoke_model_answers_an_anthropic_body_in_anthropic_format() {
    let fake = fake().await;
    fake.push_reply(FakeReply::text("Hi there").with_usage(9, 2));
    let output = fake
        .client()
        .invoke_model()
        .model_id(HAIKU)
        .content_type("application/json")
        .body(blob(&anthropic_body("Hello")))
        .send()
        .await
        .unwrap();
    assert_eq!(output.content_type, "application/json");
    let answer: Value = serde_json::from_slice(output.body.as_ref()).unwrap();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["role"], "assistant");
    assert_eq!(
        answer["content"],
        json!([{"type": "text", "text": "Hi there"}])
    );
    assert_eq!(answer["stop_reason"], "end_turn");
    assert_eq!(
        answer["usage"],
        json!({"input_tokens": 9, "output_tokens": 2})
    );
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.operation, Operation::InvokeModel);
    assert_eq!(sent.body, anthropic_body("Hello"));
}

#[tokio::test]
async fn invoke_with_response_stream_sends_anthropic_events_in_chunks() {
    let fake = fake().await;
    let mut output = fake
        .client()
        .invoke_model_with_response_stream()
        .model_id(HAIKU)
        .content_type("application/json")
        .body(blob(&anthropic_body("stream these words")))
        .send()
        .await
        .unwrap();
    let mut kinds = Vec::new();
    let mut text = String::new();
    while let Some(event) = output.body.recv().await.unwrap() {
        let ResponseStream::Chunk(part) = event else {
            panic!("only chunks are sent: {event:?}");
        };
        let event: Value = serde_json::from_slice(part.bytes.unwrap().as_ref()).unwrap();
        if let Some(delta) = event.pointer("/delta/text").and_then(Value::as_str) {
            text.push_str(delta);
        }
        kinds.push(event["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(text, "stream these words");
    assert_eq!(kinds.first().map(String::as_str), Some("message_start"));
    assert_eq!(kinds.last().map(String::as_str), Some("message_stop"));
    assert_eq!(
        kinds.iter().filter(|k| *k == "content_block_delta").count(),
        3
    );
    assert!(kinds.contains(&"message_delta".to_owned()));
}

const SONNET_4: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";

fn thinking_body(text: &str) -> Value {
    let mut body = anthropic_body(text);
    body["max_tokens"] = json!(4096);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
    body
}

#[tokio::test]
async fn invoke_model_thinks_first_when_thinking_is_enabled_and_takes_it_back_signed() {
    let fake = fake().await;
    let client = fake.client();
    let output = client
        .invoke_model()
        .model_id(SONNET_4)
        .body(blob(&thinking_body("Why is the sky blue?")))
        .send()
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(output.body.as_ref()).unwrap();
    let content = answer["content"].as_array().unwrap();
    assert_eq!(content.len(), 2, "{answer}");
    assert_eq!(content[0]["type"], "thinking");
    assert_eq!(
        content[0]["thinking"],
        "Thinking about: Why is the sky blue?"
    );
    let signature = content[0]["signature"].as_str().unwrap();
    assert!(!signature.is_empty());
    assert_eq!(content[1]["type"], "text");

    // The next turn sends the thinking block back, signed: taken. Unsigned: refused.
    let mut next = thinking_body("And at sunset?");
    next["messages"] = json!([
        {"role": "user", "content": [{"type": "text", "text": "Why is the sky blue?"}]},
        {"role": "assistant", "content": content},
        {"role": "user", "content": [{"type": "text", "text": "And at sunset?"}]}
    ]);
    client
        .invoke_model()
        .model_id(SONNET_4)
        .body(blob(&next))
        .send()
        .await
        .unwrap();
    next["messages"][1]["content"][0]["signature"] = json!("");
    let error = client
        .invoke_model()
        .model_id(SONNET_4)
        .body(blob(&next))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("ValidationException"), "{error:?}");
    assert!(
        error.message().unwrap_or("").contains("signature"),
        "{error:?}"
    );
}

#[tokio::test]
async fn invoke_model_refuses_thinking_it_cannot_do() {
    let fake = fake().await;
    let client = fake.client();
    let cases = [
        (
            HAIKU,
            thinking_body("hi"),
            "does not support extended thinking",
        ),
        (
            SONNET_4,
            {
                let mut body = thinking_body("hi");
                body["thinking"]["budget_tokens"] = json!(512);
                body
            },
            "greater than or equal to 1024",
        ),
        (
            SONNET_4,
            {
                let mut body = thinking_body("hi");
                body["max_tokens"] = json!(2048);
                body
            },
            "must be greater than `thinking.budget_tokens`",
        ),
    ];
    for (model, body, says) in cases {
        let error = client
            .invoke_model()
            .model_id(model)
            .body(blob(&body))
            .send()
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some("ValidationException"), "{error:?}");
        assert!(
            error.message().unwrap_or("").contains(says),
            "{says}: {error:?}"
        );
    }
}

#[tokio::test]
async fn invoke_with_response_stream_streams_the_thinking_then_its_signature_then_the_answer() {
    let fake = fake().await;
    let mut output = fake
        .client()
        .invoke_model_with_response_stream()
        .model_id(SONNET_4)
        .body(blob(&thinking_body("Why is the sky blue?")))
        .send()
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Some(event) = output.body.recv().await.unwrap() {
        let ResponseStream::Chunk(part) = event else {
            panic!("only chunks are sent: {event:?}");
        };
        events.push(serde_json::from_slice::<Value>(part.bytes.unwrap().as_ref()).unwrap());
    }
    let of_block = |index: u64, kind: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["index"] == index && e["type"] == kind)
            .collect()
    };
    assert_eq!(
        of_block(0, "content_block_start")[0]["content_block"]["type"],
        "thinking"
    );
    let thinking: String = of_block(0, "content_block_delta")
        .iter()
        .filter_map(|e| e.pointer("/delta/thinking").and_then(Value::as_str))
        .collect();
    assert_eq!(thinking, "Thinking about: Why is the sky blue?");
    let deltas = of_block(0, "content_block_delta");
    assert_eq!(deltas.last().unwrap()["delta"]["type"], "signature_delta");
    assert_eq!(
        of_block(1, "content_block_start")[0]["content_block"]["type"],
        "text"
    );
    let text: String = of_block(1, "content_block_delta")
        .iter()
        .filter_map(|e| e.pointer("/delta/text").and_then(Value::as_str))
        .collect();
    assert_eq!(text, "Why is the sky blue?");
    // Block 0 ends before block 1 starts.
    let at = |index: u64, kind: &str| {
        events
            .iter()
            .position(|e| e["index"] == index && e["type"] == kind)
            .unwrap()
    };
    assert!(at(0, "content_block_stop") < at(1, "content_block_start"));
    assert_eq!(events.last().unwrap()["type"], "message_stop");
}

#[tokio::test]
async fn invoke_model_refuses_a_body_without_max_tokens() {
    let fake = fake().await;
    let mut body = anthropic_body("Hello");
    body.as_object_mut().unwrap().remove("max_tokens");
    let error = fake
        .client()
        .invoke_model()
        .model_id(HAIKU)
        .body(blob(&body))
        .send()
        .await
        .unwrap_err();
    let service_error = error.into_service_error();
    assert_eq!(service_error.code(), Some("ValidationException"));
    assert!(service_error
        .message()
        .unwrap()
        .contains("required key [max_tokens] not found"));
}

#[tokio::test]
async fn errors_have_bedrocks_status_header_and_body() {
    let fake = fake().await;
    fake.push_fault(Fault::access_denied());
    let message = Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text("hi".into()))
        .build()
        .unwrap();
    let error = fake
        .client()
        .converse()
        .model_id(HAIKU)
        .messages(message)
        .send()
        .await
        .unwrap_err();
    let raw = error.raw_response().unwrap();
    assert_eq!(raw.status().as_u16(), 403);
    assert!(raw
        .headers()
        .get("x-amzn-errortype")
        .unwrap()
        .starts_with("AccessDeniedException"));
    let body: Value = serde_json::from_slice(raw.body().bytes().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"message": "You don't have access to the model with the specified model ID."})
    );
    assert_eq!(
        error.into_service_error().code(),
        Some("AccessDeniedException")
    );
}

/// A raw HTTP/1.1 exchange: what a client other than the SDK sees.
async fn raw_http(fake: &FakeBedrock, request: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(fake.addr())
        .await
        .expect("connect to the fake");
    socket
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), socket.read_to_string(&mut answer))
        .await
        .expect("the fake answers and closes")
        .expect("read the answer");
    answer
}

#[tokio::test]
async fn unknown_routes_are_404_and_bad_json_is_a_validation_error() {
    let fake = fake().await;
    let answer = raw_http(
        &fake,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        answer.contains("x-amzn-errortype: UnknownOperationException"),
        "{answer}"
    );

    let body = "{not json";
    let request = format!(
        "POST /model/amazon.nova-micro-v1%3A0/converse HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = raw_http(&fake, &request).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("ValidationException"), "{answer}");
    assert!(answer.contains("Malformed input request"), "{answer}");
    let recorded = fake.last_request().unwrap();
    assert_eq!(recorded.model_id, "amazon.nova-micro-v1:0");
    assert_eq!(recorded.body, Value::Null);
}

#[tokio::test]
async fn timing_delays_the_first_delta_of_a_converse_stream() {
    let fake = fake().await;
    let delay = Duration::from_millis(120);
    fake.set_timing(Timing {
        time_to_first_token: delay,
        delta_delay: Duration::ZERO,
    });
    let message = Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text("slow start".into()))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let mut output = fake
        .client()
        .converse_stream()
        .model_id(HAIKU)
        .messages(message)
        .send()
        .await
        .unwrap();
    let mut first_delta_at = None;
    let mut metadata_seen = false;
    while let Some(event) = output.stream.recv().await.unwrap() {
        use aws_sdk_bedrockruntime::types::ConverseStreamOutput as Event;
        match event {
            Event::ContentBlockDelta(_) if first_delta_at.is_none() => {
                first_delta_at = Some(started.elapsed());
            }
            Event::Metadata(metadata) => {
                metadata_seen = true;
                assert!(metadata.usage.is_some());
            }
            _ => {}
        }
    }
    assert!(
        first_delta_at.unwrap() >= delay,
        "the first token waits for the scripted delay"
    );
    assert!(metadata_seen);
}
