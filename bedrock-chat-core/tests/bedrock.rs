//! `BedrockChatModel` against `FakeBedrock` over HTTP, through the real
//! `aws-sdk-bedrockruntime` client: what is sent, what comes back, how every failure is
//! classified, retries, broken streams and structured output.
#![cfg(all(feature = "bedrock", feature = "testkit"))]

use std::time::Duration;

use bedrock_chat_core::bedrock::{BedrockChatModel, BedrockConfig};
use bedrock_chat_core::testkit::{FakeBedrock, FakeReply, Fault, Operation};
use bedrock_chat_core::{
    ChatModel, GuardrailConfig, GuardrailStreamMode, InferenceConfig, ModelError, ModelEvent,
    ModelMessage, ModelRequest, OutputSchema, StopReason, Usage,
};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// Fast retries and a short stream timeout, so failing cases finish quickly.
fn config(model_id: &str) -> BedrockConfig {
    BedrockConfig::new(model_id)
        .with_backoff(Duration::from_millis(5), Duration::from_millis(50))
        .with_stream_idle_timeout(Duration::from_secs(5))
}

async fn fake() -> FakeBedrock {
    FakeBedrock::start().await.expect("the fake starts")
}

fn ask(text: &str) -> ModelRequest {
    ModelRequest::new([ModelMessage::user(text)])
}

/// Every event of a stream, and the error that ended it, if one did.
async fn drain(
    model: &BedrockChatModel,
    request: ModelRequest,
) -> (Vec<ModelEvent>, Option<ModelError>) {
    let mut stream = model
        .converse_stream(request)
        .await
        .expect("the stream starts");
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => events.push(event),
            Err(error) => {
                assert!(stream.next().await.is_none(), "the error is the last item");
                return (events, Some(error));
            }
        }
    }
    (events, None)
}

fn text_of(events: &[ModelEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn close_to(value: &Value, expected: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-6)
}

#[tokio::test]
async fn converse_sends_the_request_as_given_and_returns_usage_and_stop_reason() {
    let fake = fake().await;
    fake.push_reply(
        FakeReply::text("Paris.")
            .with_usage(21, 2)
            .with_stop_reason("stop_sequence")
            .with_time_to_first_token(Duration::from_millis(15)),
    );
    let model = fake.chat_model(config(HAIKU));
    let request = ModelRequest::new([
        ModelMessage::user("Capital of Italy?"),
        ModelMessage::assistant("Rome."),
        ModelMessage::user("And of France?"),
    ])
    .with_system("Answer in one word.")
    .with_inference(
        InferenceConfig::new()
            .with_max_tokens(100)
            .with_temperature(0.25)
            .with_top_p(0.5)
            .with_stop_sequences(["END"]),
    );
    let reply = model.converse(request).await.unwrap();
    assert_eq!(reply.text, "Paris.");
    assert_eq!(reply.usage, Usage::new(21, 2));
    assert_eq!(reply.stop_reason, StopReason::StopSequence);
    assert_eq!(
        reply.latency,
        Duration::from_millis(15),
        "Bedrock's latencyMs"
    );
    assert_eq!(reply.structured, None);

    let sent = fake.last_request().unwrap();
    assert_eq!(sent.operation, Operation::Converse);
    assert_eq!(sent.model_id, HAIKU, "the percent-encoded id is decoded");
    assert!(sent
        .header("authorization")
        .is_some_and(|h| h.starts_with("AWS4-HMAC-SHA256")));
    let body = &sent.body;
    assert_eq!(body["system"], json!([{"text": "Answer in one word."}]));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"text": "Capital of Italy?"}]},
            {"role": "assistant", "content": [{"text": "Rome."}]},
            {"role": "user", "content": [{"text": "And of France?"}]}
        ])
    );
    let inference = &body["inferenceConfig"];
    assert_eq!(inference["maxTokens"], 100);
    assert!(close_to(&inference["temperature"], 0.25), "{inference}");
    assert!(close_to(&inference["topP"], 0.5), "{inference}");
    assert_eq!(inference["stopSequences"], json!(["END"]));
    assert!(body.get("toolConfig").is_none());
    assert!(body.get("guardrailConfig").is_none());
}

#[tokio::test]
async fn an_unset_inference_config_and_blank_system_prompt_are_left_out() {
    let fake = fake().await;
    let model = fake.chat_model(config(HAIKU));
    let mut request = ask("hello");
    request.system = Some("   ".into());
    model.converse(request).await.unwrap();
    let body = fake.last_request().unwrap().body;
    assert!(body.get("inferenceConfig").is_none(), "{body}");
    assert!(body.get("system").is_none(), "{body}");
}

#[tokio::test]
async fn guardrail_fields_arrive_as_sent_on_both_apis() {
    let fake = fake().await;
    let model = fake.chat_model(config("amazon.nova-micro-v1:0"));
    let mut request = ask("hello");
    request.guardrail = Some(
        GuardrailConfig::new("gr-123abc", "DRAFT")
            .with_trace(true)
            .with_stream_mode(GuardrailStreamMode::Async),
    );
    model.converse(request.clone()).await.unwrap();
    assert_eq!(
        fake.last_request().unwrap().body["guardrailConfig"],
        json!({"guardrailIdentifier": "gr-123abc", "guardrailVersion": "DRAFT", "trace": "enabled"})
    );
    let (_, error) = drain(&model, request).await;
    assert!(error.is_none());
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.operation, Operation::ConverseStream);
    assert_eq!(
        sent.body["guardrailConfig"],
        json!({
            "guardrailIdentifier": "gr-123abc",
            "guardrailVersion": "DRAFT",
            "trace": "enabled",
            "streamProcessingMode": "async"
        })
    );
}

#[tokio::test]
async fn a_stream_yields_its_deltas_then_stop_then_usage() {
    let fake = fake().await;
    fake.push_reply(
        FakeReply::text("")
            .with_deltas(["Hel", "lo", " world"])
            .with_usage(7, 3)
            .with_stop_reason("max_tokens"),
    );
    let model = fake.chat_model(config(HAIKU));
    let (events, error) = drain(&model, ask("Say hello")).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        events,
        [
            ModelEvent::TextDelta("Hel".into()),
            ModelEvent::TextDelta("lo".into()),
            ModelEvent::TextDelta(" world".into()),
            ModelEvent::Stop(StopReason::MaxTokens),
            ModelEvent::Usage(Usage::new(7, 3)),
        ]
    );
}

#[tokio::test]
async fn inference_profile_and_other_vendor_ids_reach_the_service_intact() {
    let fake = fake().await;
    for id in [
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "openai.gpt-oss-120b-1:0",
        "amazon.nova-micro-v1:0",
    ] {
        let model = fake.chat_model(config(id));
        assert_eq!(model.model_id(), id);
        let reply = model.converse(ask("echo me")).await.unwrap();
        assert_eq!(reply.text, "echo me", "the fake echoes by default");
        assert_eq!(fake.last_request().unwrap().model_id, id);
    }
}

/// Whether an error is of the expected kind.
type IsKind = fn(&ModelError) -> bool;

/// Every error Bedrock answers with, and the kind it must become.
fn error_table() -> Vec<(Fault, IsKind, &'static str)> {
    vec![
        (
            Fault::throttling(),
            |e| matches!(e, ModelError::Throttled { .. }),
            "throttling",
        ),
        (
            Fault::model_not_ready(),
            |e| matches!(e, ModelError::Throttled { .. }),
            "model not ready",
        ),
        (
            Fault::service_quota_exceeded(),
            |e| matches!(e, ModelError::Throttled { .. }),
            "quota",
        ),
        (
            Fault::service_unavailable(),
            |e| matches!(e, ModelError::Unavailable { .. }),
            "503",
        ),
        (
            Fault::internal_server_error(),
            |e| matches!(e, ModelError::Unavailable { .. }),
            "500",
        ),
        (
            Fault::model_timeout(),
            |e| matches!(e, ModelError::Timeout { .. }),
            "model timeout",
        ),
        (
            Fault::validation("1 validation error detected: bad field"),
            |e| matches!(e, ModelError::InvalidRequest { .. }),
            "validation",
        ),
        (
            Fault::validation("Input is too long for requested model."),
            |e| matches!(e, ModelError::ContextOverflow { .. }),
            "input too long",
        ),
        (
            Fault::validation("prompt is too long: 210000 tokens > 200000 maximum"),
            |e| matches!(e, ModelError::ContextOverflow { .. }),
            "prompt too long",
        ),
        (
            Fault::access_denied(),
            |e| matches!(e, ModelError::AccessDenied { .. }),
            "access denied",
        ),
        (
            Fault::resource_not_found(),
            |e| matches!(e, ModelError::ModelNotFound { .. }),
            "not found",
        ),
        (
            Fault::model_error(),
            |e| matches!(e, ModelError::ModelFailure { .. }),
            "model error",
        ),
        (
            Fault::error("ModelStreamErrorException", "stream broke"),
            |e| matches!(e, ModelError::ModelFailure { .. }),
            "model stream error",
        ),
        (
            Fault::error("SomeNewException", "unknown to this library"),
            |e| matches!(e, ModelError::InvalidRequest { .. }),
            "unknown 400",
        ),
    ]
}

#[tokio::test]
async fn every_bedrock_error_maps_to_its_kind_on_converse() {
    let fake = fake().await;
    let model = fake.chat_model(config(HAIKU).with_max_attempts(1));
    for (fault, is_expected, name) in error_table() {
        fake.push_fault(fault);
        let error = model.converse(ask("hello")).await.unwrap_err();
        assert!(is_expected(&error), "{name}: got {error:?}");
        assert!(!error.to_string().is_empty());
    }
    assert_eq!(fake.pending(), 0);
}

#[tokio::test]
async fn every_bedrock_error_maps_to_its_kind_on_converse_stream() {
    let fake = fake().await;
    let model = fake.chat_model(config(HAIKU).with_max_attempts(1));
    for (fault, is_expected, name) in error_table() {
        fake.push_fault(fault);
        let error = match model.converse_stream(ask("hello")).await {
            Err(error) => error,
            Ok(_) => panic!("{name}: the stream started"),
        };
        assert!(is_expected(&error), "{name}: got {error:?}");
    }
}

#[tokio::test]
async fn requests_bedrock_refuses_map_to_their_kinds_without_retries() {
    let fake = fake().await;
    fake.deny_model("amazon.nova-pro-v1:0");
    fake.set_max_output_tokens(4096);
    fake.set_context_window_tokens(50);

    let unknown = fake.chat_model(config("acme.no-such-model-v1:0"));
    let error = unknown.converse(ask("hi")).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::InvalidRequest { message, .. } if message.contains("model identifier is invalid")),
        "{error:?}"
    );
    let denied = fake.chat_model(config("amazon.nova-pro-v1:0"));
    let error = denied.converse(ask("hi")).await.unwrap_err();
    assert!(
        matches!(error, ModelError::AccessDenied { .. }),
        "{error:?}"
    );

    let model = fake.chat_model(config(HAIKU));
    let mut too_many = ask("hi");
    too_many.inference.max_tokens = Some(5000);
    let error = model.converse(too_many).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::InvalidRequest { message, .. } if message.contains("model limit of 4096")),
        "{error:?}"
    );
    let error = model.converse(ask(&"long ".repeat(60))).await.unwrap_err();
    assert!(
        matches!(error, ModelError::ContextOverflow { .. }),
        "{error:?}"
    );
    let backwards = ModelRequest::new([
        ModelMessage::assistant("I speak first"),
        ModelMessage::user("hm"),
    ]);
    let error = model.converse_stream(backwards).await.err().unwrap();
    assert!(
        matches!(&error, ModelError::InvalidRequest { message, .. } if message.contains("start with a user message")),
        "{error:?}"
    );
    assert_eq!(fake.request_count(), 5, "refusals are not retried");
}

#[tokio::test]
async fn throttled_twice_then_answered_succeeds_on_the_third_attempt() {
    let fake = fake().await;
    fake.throttle_next(2);
    fake.push_reply(FakeReply::text("third time"));
    let model = fake.chat_model(config(HAIKU).with_max_attempts(3));
    let reply = model.converse(ask("hello")).await.unwrap();
    assert_eq!(reply.text, "third time");
    assert_eq!(fake.request_count(), 3);

    fake.clear_requests();
    fake.throttle_next(2);
    let (events, error) = drain(&model, ask("streamed hello")).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text_of(&events), "streamed hello");
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn retries_stop_at_max_attempts_and_the_last_error_is_returned() {
    let fake = fake().await;
    fake.throttle_next(5);
    let model = fake.chat_model(config(HAIKU).with_max_attempts(3));
    let error = model.converse(ask("hello")).await.unwrap_err();
    assert!(matches!(error, ModelError::Throttled { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn quota_timeout_and_server_errors_are_retried_like_throttling() {
    let fake = fake().await;
    fake.push_fault(Fault::service_quota_exceeded());
    fake.push_fault(Fault::model_timeout());
    fake.push_fault(Fault::service_unavailable());
    fake.push_fault(Fault::internal_server_error());
    let model = fake.chat_model(config(HAIKU).with_max_attempts(5));
    let reply = model.converse(ask("persistent")).await.unwrap();
    assert_eq!(reply.text, "persistent");
    assert_eq!(fake.request_count(), 5);
}

#[tokio::test]
async fn a_retry_after_header_reaches_the_throttled_error() {
    let fake = fake().await;
    fake.push_fault(Fault::throttling().with_retry_after_secs(7));
    let model = fake.chat_model(config(HAIKU).with_max_attempts(1));
    let error = model.converse(ask("hello")).await.unwrap_err();
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn a_mid_stream_exception_reaches_the_caller_after_the_deltas_before_it() {
    let fake = fake().await;
    fake.push_fault(Fault::exception_after(
        2,
        "modelStreamErrorException",
        "the model broke",
    ));
    let model = fake.chat_model(config(HAIKU));
    let (events, error) = drain(&model, ask("one two three four")).await;
    assert_eq!(
        events,
        [
            ModelEvent::TextDelta("one ".into()),
            ModelEvent::TextDelta("two ".into())
        ]
    );
    assert!(
        matches!(&error, Some(ModelError::ModelFailure { message, .. }) if message.contains("the model broke")),
        "{error:?}"
    );
    assert_eq!(
        fake.request_count(),
        1,
        "a stream is never retried after a delta"
    );
}

#[tokio::test]
async fn in_stream_exceptions_map_like_http_errors() {
    let fake = fake().await;
    let model = fake.chat_model(config(HAIKU));
    let cases: [(&str, IsKind); 5] = [
        ("throttlingException", |e| {
            matches!(e, ModelError::Throttled { .. })
        }),
        ("serviceUnavailableException", |e| {
            matches!(e, ModelError::Unavailable { .. })
        }),
        ("internalServerException", |e| {
            matches!(e, ModelError::Unavailable { .. })
        }),
        ("validationException", |e| {
            matches!(e, ModelError::InvalidRequest { .. })
        }),
        ("modelStreamErrorException", |e| {
            matches!(e, ModelError::ModelFailure { .. })
        }),
    ];
    for (exception, is_expected) in cases {
        fake.push_fault(Fault::exception_after(1, exception, "in the stream"));
        let (events, error) = drain(&model, ask("one two")).await;
        assert_eq!(events.len(), 1, "{exception}");
        let error = error.unwrap_or_else(|| panic!("{exception}: no error"));
        assert!(is_expected(&error), "{exception}: got {error:?}");
    }
    assert_eq!(fake.request_count(), 5);
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_delta_is_opened_again() {
    let fake = fake().await;
    fake.push_fault(Fault::exception_after(
        0,
        "throttlingException",
        "slow down",
    ));
    fake.push_fault(Fault::exception_after(
        0,
        "serviceUnavailableException",
        "later",
    ));
    let model = fake.chat_model(config(HAIKU).with_max_attempts(3));
    let (events, error) = drain(&model, ask("eventually fine")).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text_of(&events), "eventually fine", "no text is repeated");
    assert_eq!(fake.request_count(), 3);

    fake.clear_requests();
    fake.push_fault(Fault::exception_after(0, "validationException", "bad"));
    let (events, error) = drain(&model, ask("not retried")).await;
    assert!(events.is_empty());
    assert!(
        matches!(error, Some(ModelError::InvalidRequest { .. })),
        "{error:?}"
    );
    assert_eq!(fake.request_count(), 1, "a refusal is not retried");
}

#[tokio::test]
async fn a_stalled_stream_ends_with_a_timeout_error() {
    let fake = fake().await;
    fake.push_fault(Fault::stall_after(2));
    let idle = Duration::from_millis(300);
    let model = fake.chat_model(config(HAIKU).with_stream_idle_timeout(idle));
    let (events, error) = tokio::time::timeout(idle * 10, drain(&model, ask("a b c d")))
        .await
        .expect("the stream ends on its own");
    assert_eq!(text_of(&events), "a b ");
    assert!(
        matches!(error, Some(ModelError::Timeout { .. })),
        "{error:?}"
    );
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn a_stream_stalled_before_its_first_delta_is_retried() {
    let fake = fake().await;
    fake.push_fault(Fault::stall_after(0));
    let model = fake.chat_model(
        config(HAIKU)
            .with_stream_idle_timeout(Duration::from_millis(200))
            .with_max_attempts(2),
    );
    let (events, error) = drain(&model, ask("second try")).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text_of(&events), "second try");
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test]
async fn a_malformed_frame_ends_the_stream_with_a_model_failure() {
    let fake = fake().await;
    fake.push_fault(Fault::malformed_frame_after(1));
    let model = fake.chat_model(config(HAIKU));
    let (events, error) = drain(&model, ask("x y z")).await;
    assert_eq!(text_of(&events), "x ");
    assert!(
        matches!(error, Some(ModelError::ModelFailure { .. })),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_plain_call_that_gets_no_answer_times_out() {
    let fake = fake().await;
    fake.push_fault(Fault::stall_after(0));
    let model = fake.chat_model(
        config(HAIKU)
            .with_max_attempts(1)
            .with_call_timeout(Some(Duration::from_millis(300))),
    );
    let error = tokio::time::timeout(Duration::from_secs(5), model.converse(ask("hello")))
        .await
        .expect("the call ends on its own")
        .unwrap_err();
    assert!(matches!(error, ModelError::Timeout { .. }), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_garbled_plain_answer_is_a_model_failure_and_not_retried() {
    let fake = fake().await;
    fake.push_fault(Fault::malformed_frame_after(0));
    let model = fake.chat_model(config(HAIKU).with_max_attempts(3));
    let error = model.converse(ask("hello")).await.unwrap_err();
    // Like a corrupt frame in a stream: the answer itself is broken.
    assert!(
        matches!(error, ModelError::ModelFailure { .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn a_service_that_cannot_be_reached_is_unavailable() {
    let fake = fake().await;
    let client = fake.client();
    drop(fake);
    // Let the accept loop see the shutdown and close the port.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let model = BedrockChatModel::from_client(&client, config(HAIKU).with_max_attempts(2));
    let error = model.converse(ask("anyone there?")).await.unwrap_err();
    assert!(matches!(error, ModelError::Unavailable { .. }), "{error:?}");
    assert!(error.is_retryable());
}

#[derive(Debug, Deserialize, PartialEq)]
struct Persona {
    name: String,
    age: u32,
    traits: Vec<String>,
}

fn persona_schema() -> OutputSchema {
    OutputSchema {
        name: "persona".into(),
        description: "The persona the user describes".into(),
        schema: json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "traits": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["name", "age", "traits"]
        }),
    }
}

#[tokio::test]
async fn structured_output_round_trips_through_a_forced_tool() {
    let fake = fake().await;
    let output = json!({"name": "Link", "age": 17, "traits": ["brave", "quiet"]});
    fake.push_reply(FakeReply::tool_use(output.clone()).with_usage(40, 12));
    let model = fake.chat_model(config("amazon.nova-micro-v1:0"));
    let reply = model
        .converse_structured::<Persona>(
            ask("A quiet, brave hero of 17 called Link"),
            persona_schema(),
        )
        .await
        .unwrap();
    assert_eq!(
        reply.value,
        Persona {
            name: "Link".into(),
            age: 17,
            traits: vec!["brave".into(), "quiet".into()]
        }
    );
    assert_eq!(reply.response.structured, Some(output.clone()));
    assert_eq!(
        serde_json::from_str::<Value>(&reply.response.text).unwrap(),
        output
    );
    assert_eq!(reply.response.stop_reason, StopReason::ToolUse);
    assert_eq!(reply.response.usage, Usage::new(40, 12));

    let body = fake.last_request().unwrap().body;
    let tool = &body["toolConfig"]["tools"][0]["toolSpec"];
    assert_eq!(tool["name"], "persona");
    assert_eq!(tool["description"], "The persona the user describes");
    assert_eq!(tool["inputSchema"]["json"], persona_schema().schema);
    assert_eq!(
        body["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "persona"}})
    );
}

#[tokio::test]
async fn structured_output_that_is_not_a_tool_call_or_does_not_fit_is_a_schema_violation() {
    let fake = fake().await;
    let model = fake.chat_model(config(HAIKU));
    fake.push_reply(FakeReply::text("I would rather chat."));
    let error = model
        .converse_structured::<Persona>(ask("a persona please"), persona_schema())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ModelError::SchemaViolation { .. }),
        "{error:?}"
    );

    fake.push_reply(FakeReply::tool_use(json!({"name": 5, "age": "old"})));
    let error = model
        .converse_structured::<Persona>(ask("a persona please"), persona_schema())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ModelError::SchemaViolation { .. }),
        "{error:?}"
    );

    fake.push_reply(FakeReply::tool_use_named("other_tool", json!({})));
    let mut request = ask("a persona please");
    request.output_schema = Some(persona_schema());
    let error = model.converse(request).await.unwrap_err();
    assert!(
        matches!(error, ModelError::SchemaViolation { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn streamed_structured_output_is_the_tool_input_json() {
    let fake = fake().await;
    let output = json!({"name": "Zelda", "age": 18, "traits": ["wise", "determined", "kind"]});
    fake.push_reply(FakeReply::tool_use(output.clone()));
    let model = fake.chat_model(config(HAIKU));
    let mut request = ask("a wise princess");
    request.output_schema = Some(persona_schema());
    let (events, error) = drain(&model, request).await;
    assert!(error.is_none(), "{error:?}");
    assert!(events.len() > 3, "the JSON comes in pieces: {events:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&text_of(&events)).unwrap(),
        output
    );
    assert!(events.contains(&ModelEvent::Stop(StopReason::ToolUse)));
}
