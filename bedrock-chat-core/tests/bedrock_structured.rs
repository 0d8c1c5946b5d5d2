//! Structured output without a scripted reply: `FakeBedrock` answers a forced tool with input
//! generated to validate against the tool's JSON schema (through the plain SDK's Converse
//! and InvokeModel, and through `BedrockChatModel`), the offline model does the same, and
//! model errors keep the SDK error as their source.
#![cfg(all(feature = "bedrock", feature = "testkit"))]

use std::collections::HashMap;
use std::error::Error as _;
use std::time::Duration;

use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, Message, SpecificToolChoice, Tool, ToolChoice,
    ToolConfiguration, ToolInputSchema, ToolSpecification,
};
use aws_smithy_types::{Document, Number};
use bedrock_chat_core::bedrock::BedrockConfig;
use bedrock_chat_core::testkit::{FakeBedrock, FakeReply, Fault};
use bedrock_chat_core::{
    ChatModel, ModelError, ModelEvent, ModelMessage, ModelRequest, OfflineChatModel, OutputSchema,
};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};

const NOVA: &str = "amazon.nova-micro-v1:0";
const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const PROMPT: &str = "a cheerful pirate who loves maps";

async fn fake() -> FakeBedrock {
    FakeBedrock::start().await.expect("the fake starts")
}

fn ask(text: &str) -> ModelRequest {
    ModelRequest::new([ModelMessage::user(text)])
}

/// A persona as a host would ask for one: nested objects, enums, arrays with a minimum,
/// numeric bounds, an optional field, a `$ref` into `$defs` and a nullable `anyOf`, the
/// shapes schemars and pydantic generate.
fn persona_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "description": {"type": "string"},
            "system_prompt": {"type": "string"},
            "age": {"type": "integer", "minimum": 18, "maximum": 120},
            "tone": {"type": "string", "enum": ["warm", "dry", "formal"]},
            "kind": {"const": "persona"},
            "traits": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "voice": {
                "type": "object",
                "properties": {
                    "pitch": {"type": "number", "exclusiveMinimum": 0, "maximum": 2},
                    "accent": {"anyOf": [{"type": "string"}, {"type": "null"}]}
                },
                "required": ["pitch", "accent"],
                "additionalProperties": false
            },
            "skills": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/Skill"}},
            "verified": {"type": "boolean"},
            "contact": {"type": "string", "format": "email"}
        },
        "required": ["name", "description", "system_prompt", "age", "tone", "kind", "traits",
                     "voice", "skills", "verified"],
        "additionalProperties": false,
        "$defs": {
            "Skill": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "level": {"enum": ["novice", "expert"]},
                    "years": {"type": ["integer", "null"], "minimum": 1}
                },
                "required": ["label", "level", "years"]
            }
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Persona {
    name: String,
    description: String,
    system_prompt: String,
    age: u8,
    tone: Tone,
    kind: String,
    traits: Vec<String>,
    voice: Voice,
    skills: Vec<Skill>,
    verified: bool,
    contact: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Tone {
    Warm,
    Dry,
    Formal,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Voice {
    pitch: f64,
    accent: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Skill {
    label: String,
    level: Level,
    years: Option<u32>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Level {
    Novice,
    Expert,
}

fn persona_output() -> OutputSchema {
    OutputSchema {
        name: "persona".into(),
        description: "The persona the user describes".into(),
        schema: persona_schema(),
    }
}

/// Checks `value` against `schema` for the keywords the schemas here use; the errors name
/// the path that is wrong. Small on purpose: a second, independent reading of the schema.
fn violations(root: &Value, schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(s) = schema.as_object() else {
        return out;
    };
    let fail = |out: &mut Vec<String>, what: String| out.push(format!("{path}: {what}"));
    if let Some(target) = s.get("$ref").and_then(Value::as_str) {
        let resolved = root
            .pointer(target.trim_start_matches('#'))
            .expect("$ref resolves");
        out.extend(violations(root, resolved, value, path));
    }
    if let Some(types) = s.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = |t: &&str| match *t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        };
        if !types.iter().any(fits) {
            fail(&mut out, format!("{value} is not of type {types:?}"));
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            fail(&mut out, format!("{value} is not one of {allowed:?}"));
        }
    }
    if let Some(c) = s.get("const") {
        if c != value {
            fail(&mut out, format!("{value} is not {c}"));
        }
    }
    if let Some(branches) = s.get("anyOf").and_then(Value::as_array) {
        if !branches
            .iter()
            .any(|b| violations(root, b, value, path).is_empty())
        {
            fail(&mut out, format!("{value} fits no anyOf branch"));
        }
    }
    if let Some(x) = value.as_f64() {
        let n = |k: &str| s.get(k).and_then(Value::as_f64);
        if n("minimum").is_some_and(|m| x < m) || n("maximum").is_some_and(|m| x > m) {
            fail(&mut out, format!("{x} is out of bounds"));
        }
        if n("exclusiveMinimum").is_some_and(|m| x <= m)
            || n("exclusiveMaximum").is_some_and(|m| x >= m)
        {
            fail(&mut out, format!("{x} is out of exclusive bounds"));
        }
    }
    if let Some(text) = value.as_str() {
        let len = text.chars().count() as u64;
        let n = |k: &str| s.get(k).and_then(Value::as_u64);
        if n("minLength").is_some_and(|m| len < m) || n("maxLength").is_some_and(|m| len > m) {
            fail(&mut out, format!("{text:?} has the wrong length"));
        }
        if s.get("format").and_then(Value::as_str) == Some("email") && !text.contains('@') {
            fail(&mut out, format!("{text:?} is not an email"));
        }
    }
    if let Some(items) = value.as_array() {
        let len = items.len() as u64;
        if s.get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            fail(&mut out, format!("{len} items are too few"));
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                out.extend(violations(root, item_schema, item, &format!("{path}/{i}")));
            }
        }
    }
    if let Some(map) = value.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for key in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().unwrap_or_default();
            if !map.contains_key(key) {
                fail(&mut out, format!("required `{key}` is missing"));
            }
        }
        for (key, item) in map {
            match props.and_then(|p| p.get(key)) {
                Some(sub) => out.extend(violations(root, sub, item, &format!("{path}/{key}"))),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    fail(&mut out, format!("`{key}` is not allowed"));
                }
                None => {}
            }
        }
    }
    out
}

#[track_caller]
fn assert_valid(schema: &Value, value: &Value) {
    let errors = violations(schema, schema, value, "");
    assert!(
        errors.is_empty(),
        "{value:#}\ndoes not fit the schema: {errors:#?}"
    );
}

/// The checker above catches what it should, so a pass means something.
#[test]
fn the_checker_refuses_values_that_do_not_fit() {
    let schema = persona_schema();
    assert!(!violations(&schema, &schema, &json!({"text": PROMPT}), "").is_empty());
    let bad_skill = json!({"label": "x", "level": "guru", "years": 0});
    let skill = json!({"$ref": "#/$defs/Skill"});
    assert_eq!(violations(&schema, &skill, &bad_skill, "").len(), 2);
}

fn assert_reads_as_a_persona(persona: &Persona) {
    assert_eq!(persona.name, "Cheerful Pirate");
    assert_eq!(persona.description, "A cheerful pirate who loves maps.");
    assert!(
        persona
            .system_prompt
            .starts_with("You are a cheerful pirate who loves maps."),
        "{}",
        persona.system_prompt
    );
    assert_eq!(persona.age, 18);
    assert_eq!(persona.tone, Tone::Warm);
    assert_eq!(persona.kind, "persona");
    assert_eq!(persona.traits.len(), 2);
    assert_ne!(persona.traits[0], persona.traits[1]);
    assert!(persona.voice.pitch > 0.0 && persona.voice.pitch <= 2.0);
    assert!(persona.voice.accent.is_some());
    assert_eq!(persona.skills.len(), 1);
    assert_eq!(persona.skills[0].level, Level::Novice);
    assert_eq!(persona.skills[0].years, Some(1));
    assert!(!persona.skills[0].label.is_empty());
    assert!(!persona.verified);
    assert!(persona.contact.as_deref().is_some_and(|c| c.contains('@')));
}

#[tokio::test]
async fn converse_structured_deserializes_a_forced_tool_answer_into_nested_types() {
    let fake = fake().await;
    let model = fake.chat_model(BedrockConfig::new(NOVA));
    let reply = model
        .converse_structured::<Persona>(ask(PROMPT), persona_output())
        .await
        .unwrap();
    assert_reads_as_a_persona(&reply.value);
    let json = reply.response.structured.expect("structured output");
    assert_valid(&persona_schema(), &json);
    let sent = fake.last_request().unwrap().body;
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
        persona_schema()
    );
}

#[tokio::test]
async fn a_streamed_forced_tool_answer_fits_the_schema() {
    let fake = fake().await;
    let model = fake.chat_model(BedrockConfig::new(HAIKU));
    let mut request = ask(PROMPT);
    request.output_schema = Some(persona_output());
    let events: Vec<ModelEvent> = model
        .converse_stream(request)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_valid(&persona_schema(), &value);
}

fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Document::Number(Number::PosInt(u)),
            (None, Some(i)) => Document::Number(Number::NegInt(i)),
            _ => Document::Number(Number::Float(n.as_f64().unwrap_or_default())),
        },
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn to_json(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => json!(u),
        Document::Number(Number::NegInt(i)) => json!(i),
        Document::Number(Number::Float(f)) => json!(f),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Document::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

#[tokio::test]
async fn the_plain_sdk_converse_gets_tool_input_that_fits_the_schema() {
    let fake = fake().await;
    let spec = ToolSpecification::builder()
        .name("persona")
        .input_schema(ToolInputSchema::Json(to_document(&persona_schema())))
        .build()
        .unwrap();
    let tools = ToolConfiguration::builder()
        .tools(Tool::ToolSpec(spec))
        .tool_choice(ToolChoice::Tool(
            SpecificToolChoice::builder()
                .name("persona")
                .build()
                .unwrap(),
        ))
        .build()
        .unwrap();
    let output = fake
        .client()
        .converse()
        .model_id(NOVA)
        .messages(
            Message::builder()
                .role(ConversationRole::User)
                .content(ContentBlock::Text(PROMPT.into()))
                .build()
                .unwrap(),
        )
        .tool_config(tools)
        .send()
        .await
        .unwrap();
    let message = output.output.unwrap();
    let message = message.as_message().unwrap();
    let Some(ContentBlock::ToolUse(tool_use)) = message.content.first() else {
        panic!("not a tool call: {message:?}");
    };
    assert_eq!(tool_use.name, "persona");
    let input = to_json(&tool_use.input);
    assert_valid(&persona_schema(), &input);
    let persona: Persona = serde_json::from_value(input).unwrap();
    assert_reads_as_a_persona(&persona);
}

#[tokio::test]
async fn the_plain_sdk_invoke_model_gets_tool_input_that_fits_the_schema() {
    let fake = fake().await;
    let body = json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 500,
        "messages": [{"role": "user", "content": PROMPT}],
        "tools": [
            {"name": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"name": "persona", "input_schema": persona_schema()}
        ],
        "tool_choice": {"type": "tool", "name": "persona"}
    });
    let output = fake
        .client()
        .invoke_model()
        .model_id(HAIKU)
        .content_type("application/json")
        .body(Blob::new(body.to_string().into_bytes()))
        .send()
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(output.body.as_ref()).unwrap();
    let block = &answer["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "persona");
    assert_valid(&persona_schema(), &block["input"]);
    assert_eq!(answer["stop_reason"], "tool_use");
}

#[tokio::test]
async fn a_scripted_reply_still_wins_over_the_generated_input() {
    let fake = fake().await;
    fake.push_reply(FakeReply::tool_use(json!({"anything": true})));
    let model = fake.chat_model(BedrockConfig::new(NOVA));
    let mut request = ask(PROMPT);
    request.output_schema = Some(persona_output());
    let reply = model.converse(request).await.unwrap();
    assert_eq!(reply.structured, Some(json!({"anything": true})));
}

#[tokio::test]
async fn the_offline_model_fills_the_same_schema_the_same_way() {
    let mut request = ask(PROMPT);
    request.output_schema = Some(persona_output());
    let offline = OfflineChatModel::new().converse(request).await.unwrap();
    let value = offline.structured.expect("structured output");
    assert_valid(&persona_schema(), &value);
    let persona: Persona = serde_json::from_value(value.clone()).unwrap();
    assert_reads_as_a_persona(&persona);

    let fake = fake().await;
    let reply = fake
        .chat_model(BedrockConfig::new(NOVA))
        .converse_structured::<Value>(ask(PROMPT), persona_output())
        .await
        .unwrap();
    assert_eq!(reply.value, value, "one schema filler for both");
}

#[tokio::test]
async fn a_classified_model_error_keeps_the_sdk_error_as_its_source() {
    let fake = fake().await;
    fake.push_fault(Fault::throttling().with_retry_after_secs(7));
    let model = fake.chat_model(BedrockConfig::new(NOVA).with_max_attempts(1));
    let error = model.converse(ask("hi")).await.unwrap_err();
    assert!(matches!(error, ModelError::Throttled { .. }), "{error:?}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert!(error.message().contains("ThrottlingException"));
    let source = error.source().expect("the SDK error is kept");
    let sdk = source
        .downcast_ref::<aws_sdk_bedrockruntime::error::SdkError<
            aws_sdk_bedrockruntime::operation::converse::ConverseError,
            aws_sdk_bedrockruntime::config::http::HttpResponse,
        >>()
        .expect("an SdkError");
    assert_eq!(sdk.raw_response().map(|r| r.status().as_u16()), Some(429));
    assert!(sdk
        .as_service_error()
        .is_some_and(|e| e.is_throttling_exception()));
}

/// A model that takes native structured output (`outputConfig`).
const SONNET_45: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

#[tokio::test]
async fn a_model_that_takes_native_structured_output_gets_output_config_and_no_tool() {
    let fake = fake().await;
    let model = fake.chat_model(BedrockConfig::new(SONNET_45));
    let reply = model
        .converse_structured::<Value>(ask(PROMPT), persona_output())
        .await
        .unwrap();
    let body = fake.last_request().unwrap().body;
    assert!(body.get("toolConfig").is_none(), "{body}");
    let format = &body["outputConfig"]["textFormat"];
    assert_eq!(format["type"], "json_schema");
    let definition = &format["structure"]["jsonSchema"];
    assert_eq!(definition["name"], persona_output().name);
    let sent: Value = serde_json::from_str(definition["schema"].as_str().unwrap()).unwrap();
    assert_eq!(sent, persona_output().schema);
    // The answer is the JSON text, parsed.
    assert_eq!(reply.response.text, reply.value.to_string());
    assert_eq!(reply.response.structured.as_ref(), Some(&reply.value));
    assert!(reply.value["name"].is_string(), "{}", reply.value);
}

#[tokio::test]
async fn other_models_get_the_forced_tool_and_the_choice_can_be_overridden() {
    let fake = fake().await;
    let nova = fake.chat_model(BedrockConfig::new(NOVA));
    nova.converse_structured::<Value>(ask(PROMPT), persona_output())
        .await
        .unwrap();
    let body = fake.last_request().unwrap().body;
    assert!(body.get("outputConfig").is_none(), "{body}");
    assert_eq!(
        body["toolConfig"]["toolChoice"]["tool"]["name"],
        persona_output().name
    );

    // Forced on for a model that does not take it: Bedrock refuses, before any answer.
    let forced = fake.chat_model(BedrockConfig::new(NOVA).with_native_structured_output(true));
    let error = forced
        .converse_structured::<Value>(ask(PROMPT), persona_output())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ModelError::InvalidRequest { .. }),
        "{error:?}"
    );

    // Forced off for a model that takes it: the tool.
    let off = fake.chat_model(BedrockConfig::new(SONNET_45).with_native_structured_output(false));
    off.converse_structured::<Value>(ask(PROMPT), persona_output())
        .await
        .unwrap();
    let body = fake.last_request().unwrap().body;
    assert!(body.get("outputConfig").is_none() && body.get("toolConfig").is_some());
}

#[tokio::test]
async fn native_structured_output_that_is_not_json_is_a_schema_violation() {
    let fake = fake().await;
    fake.push_reply(FakeReply::text("Sure! Here is a persona: Captain Maps."));
    let model = fake.chat_model(BedrockConfig::new(SONNET_45));
    let error = model
        .converse_structured::<Value>(ask(PROMPT), persona_output())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ModelError::SchemaViolation { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn native_structured_output_may_come_with_reasoning() {
    let fake = fake().await;
    let model = fake.chat_model(BedrockConfig::new(SONNET_45));
    let request = ask(PROMPT).with_inference(
        bedrock_chat_core::InferenceConfig::new()
            .with_max_tokens(4096)
            .with_reasoning_budget(1024),
    );
    let reply = model
        .converse_structured::<Value>(request, persona_output())
        .await
        .unwrap();
    assert!(!reply.response.reasoning.is_empty());
    assert!(reply.value.is_object());
}
