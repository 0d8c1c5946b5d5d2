//! Attachments and prompt caching end to end: `ChatService` on `BedrockChatModel` and
//! `FakeBedrock` (through the real AWS SDK) and the in-memory store.
#![cfg(all(feature = "bedrock", feature = "testkit"))]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bedrock_chat_core::bedrock::BedrockConfig;
use bedrock_chat_core::testkit::FakeBedrock;
use bedrock_chat_core::{
    ChatModel, ChatPolicy, ChatService, DocumentFormat, HistoryStore, ImageFormat, ModelError,
    ModelMessage, ModelRequest, Part, RateLimiter, SendRequest, UserId,
};
use bedrock_chat_ratelimit::InMemoryRateLimiter;
use bedrock_chat_store::InMemoryHistoryStore;
use serde_json::Value;

/// A 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

fn alice() -> UserId {
    UserId::new("alice").expect("a valid user id")
}

fn config() -> BedrockConfig {
    BedrockConfig::new("us.anthropic.claude-sonnet-4-20250514-v1:0")
        .with_backoff(Duration::from_millis(5), Duration::from_millis(50))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn last_body(fake: &FakeBedrock) -> Value {
    fake.last_request().expect("a request was made").body
}

#[tokio::test]
async fn attachments_reach_bedrock_as_blocks_and_count_as_input() {
    let fake = FakeBedrock::start().await.unwrap();
    let store = InMemoryHistoryStore::new();
    let service =
        ChatService::builder(Arc::new(fake.chat_model(config())), Arc::new(store.clone())).build();

    let plain = service
        .send(SendRequest::new(alice(), "What is in the picture?"))
        .await
        .unwrap();
    let reply = service
        .send(
            SendRequest::new(alice(), "What is in the picture?")
                .with_attachment(Part::image(ImageFormat::Png, PNG.to_vec()))
                .with_attachment(Part::document(
                    DocumentFormat::Txt,
                    "minutes",
                    b"We met.".to_vec(),
                )),
        )
        .await
        .unwrap();

    let body = last_body(&fake);
    let blocks = body["messages"][0]["content"].as_array().unwrap();
    assert_eq!(blocks.len(), 3, "{body}");
    assert_eq!(blocks[0]["image"]["format"], "png");
    assert_eq!(blocks[0]["image"]["source"]["bytes"], b64(PNG));
    assert_eq!(blocks[1]["document"]["name"], "minutes");
    assert_eq!(blocks[1]["document"]["source"]["bytes"], b64(b"We met."));
    assert_eq!(blocks[2]["text"], "What is in the picture?");
    assert!(
        reply.usage.input_tokens > plain.usage.input_tokens,
        "the image and document count as input: {:?} vs {:?}",
        reply.usage,
        plain.usage
    );

    // Stored as parts, byte for byte, and sent again with the next turn.
    let question = store
        .get_message(&alice(), reply.message_uid)
        .await
        .unwrap();
    assert_eq!(question.content, "What is in the picture?");
    assert_eq!(question.parts.len(), 3);
    assert_eq!(
        question.parts[0],
        Part::image(ImageFormat::Png, PNG.to_vec())
    );
    service
        .send(SendRequest::new(alice(), "And now?").in_chat(reply.chat_id))
        .await
        .unwrap();
    let body = last_body(&fake);
    assert_eq!(
        body["messages"][0]["content"][0]["image"]["source"]["bytes"],
        b64(PNG)
    );
    assert_eq!(body["messages"][2]["content"][0]["text"], "And now?");
}

#[tokio::test]
async fn fake_bedrock_refuses_attachments_as_bedrock_does() {
    let fake = FakeBedrock::start().await.unwrap();
    let model = fake.chat_model(config().with_max_attempts(1));
    let call = |parts: Vec<Part>| {
        model.converse(ModelRequest::new(
            [ModelMessage::user("").with_parts(parts)],
        ))
    };
    // Bytes that are not what the format says.
    let error = call(vec![
        Part::image(ImageFormat::Jpeg, PNG.to_vec()),
        Part::text("look"),
    ])
    .await
    .unwrap_err();
    assert!(
        matches!(error, ModelError::InvalidRequest { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("not a jpeg image"), "{error}");
    // More images than a request may hold.
    let mut many: Vec<Part> = (0..21)
        .map(|_| Part::image(ImageFormat::Png, PNG.to_vec()))
        .collect();
    many.push(Part::text("so many"));
    let error = call(many).await.unwrap_err();
    assert!(error.to_string().contains("at most 20 images"), "{error}");
    // A document name Bedrock refuses.
    let error = call(vec![
        Part::document(DocumentFormat::Md, "notes.md", b"# x".to_vec()),
        Part::text("read"),
    ])
    .await
    .unwrap_err();
    assert!(error.to_string().contains("letters, digits"), "{error}");
    // A good one passes.
    call(vec![
        Part::image(ImageFormat::Png, PNG.to_vec()),
        Part::text("ok"),
    ])
    .await
    .unwrap();
}

#[tokio::test]
async fn a_send_over_the_limits_is_refused_before_the_model_and_stores_nothing() {
    let fake = FakeBedrock::start().await.unwrap();
    let store = InMemoryHistoryStore::new();
    let service =
        ChatService::builder(Arc::new(fake.chat_model(config())), Arc::new(store.clone())).build();
    let error = service
        .send(
            SendRequest::new(alice(), "look")
                .with_attachment(Part::image(ImageFormat::Gif, PNG.to_vec())),
        )
        .await
        .unwrap_err();
    assert_eq!(error.http_status(), 415, "{error}");
    assert_eq!(fake.request_count(), 0);
    assert_eq!(store.usage(&alice()).await.unwrap().messages, 0);
}

#[tokio::test]
async fn older_attachments_over_bedrocks_request_counts_are_left_out_of_the_context() {
    let fake = FakeBedrock::start().await.unwrap();
    let store = InMemoryHistoryStore::new();
    let service =
        ChatService::builder(Arc::new(fake.chat_model(config())), Arc::new(store.clone())).build();
    let doc = |name: &str| Part::document(DocumentFormat::Txt, name, b"text".to_vec());
    let mut first = SendRequest::new(alice(), "five documents");
    for name in ["a", "b", "c", "d", "e"] {
        first = first.with_attachment(doc(name));
    }
    let first = service.send(first).await.unwrap();
    // A sixth document in the next turn: the request would hold six, Bedrock takes five.
    service
        .send(
            SendRequest::new(alice(), "one more")
                .in_chat(first.chat_id)
                .with_attachment(doc("f")),
        )
        .await
        .expect("the oldest document is left out, not the send refused");
    let body = last_body(&fake);
    let documents = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["content"].as_array().unwrap())
        .filter(|b| b.get("document").is_some())
        .count();
    assert_eq!(documents, 5, "{body}");
    let first_turn = body["messages"][0]["content"].to_string();
    assert!(first_turn.contains("left out"), "{first_turn}");
}

#[tokio::test]
async fn prompt_caching_reads_the_stable_prefix_on_the_next_turn_and_budgets_it_cheaper() {
    let fake = FakeBedrock::start().await.unwrap();
    fake.set_cache_min_tokens(50);
    let store = InMemoryHistoryStore::new();
    let budget = Arc::new(InMemoryRateLimiter::new(
        bedrock_chat_core::Quota::per_day(1_000_000).unwrap(),
    ));
    let system = "You are a patient tutor. ".repeat(40);
    let service =
        ChatService::builder(Arc::new(fake.chat_model(config())), Arc::new(store.clone()))
            .token_budget(budget.clone())
            .policy(ChatPolicy::default().with_system_prompt(system.clone()))
            .build();

    let first = service
        .send(SendRequest::new(alice(), "Explain recursion."))
        .await
        .unwrap();
    let body = last_body(&fake);
    assert_eq!(body["system"][1]["cachePoint"]["type"], "default", "{body}");
    assert!(first.usage.cache_write_tokens >= 240, "{:?}", first.usage);
    assert_eq!(first.usage.cache_read_tokens, 0);

    let second = service
        .send(SendRequest::new(alice(), "And iteration?").in_chat(first.chat_id))
        .await
        .unwrap();
    let body = last_body(&fake);
    // The turn before the last carries the second cache point.
    assert!(
        body["messages"][1]["content"][1]
            .get("cachePoint")
            .is_some(),
        "{body}"
    );
    assert!(
        second.usage.cache_read_tokens >= first.usage.cache_write_tokens,
        "the system prompt is read from the cache: {:?}",
        second.usage
    );
    // Stored with the reply, and charged to the budget at the cached price.
    let answer = store
        .get_message(&alice(), second.response_session_id)
        .await
        .unwrap();
    assert_eq!(answer.usage, Some(second.usage));
    let charged = budget.check("alice", 0).await.unwrap();
    let spent = 1_000_000 - charged.remaining;
    assert_eq!(
        spent,
        first.usage.budget_tokens() + second.usage.budget_tokens()
    );
    assert!(second.usage.budget_tokens() < second.usage.total_tokens);
}

#[tokio::test]
async fn prompt_caching_can_be_turned_off_by_policy_or_model() {
    let fake = FakeBedrock::start().await.unwrap();
    fake.set_cache_min_tokens(1);
    let store = InMemoryHistoryStore::new();
    for (policy, model) in [
        (ChatPolicy::default().with_prompt_caching(false), config()),
        (ChatPolicy::default(), config().with_prompt_caching(false)),
        (
            ChatPolicy::default(),
            BedrockConfig::new("meta.llama3-8b-instruct-v1:0"),
        ),
    ] {
        let service =
            ChatService::builder(Arc::new(fake.chat_model(model)), Arc::new(store.clone()))
                .policy(policy.with_system_prompt("Be brief."))
                .build();
        let reply = service.send(SendRequest::new(alice(), "hi")).await.unwrap();
        let body = last_body(&fake);
        assert_eq!(body["system"].as_array().unwrap().len(), 1, "{body}");
        assert_eq!(reply.usage.cache_write_tokens, 0);
    }
}

#[tokio::test]
async fn a_file_attached_again_in_a_later_turn_goes_under_a_name_of_its_own() {
    // Bedrock refuses two documents of one name anywhere in a request, and every turn
    // sends the whole conversation: the second "notes" is numbered, the first keeps its
    // name, and the stored messages keep theirs.
    let fake = FakeBedrock::start().await.unwrap();
    let store = InMemoryHistoryStore::new();
    let service =
        ChatService::builder(Arc::new(fake.chat_model(config())), Arc::new(store.clone())).build();
    let notes = || Part::document(DocumentFormat::Txt, "notes", b"v1".to_vec());
    let first = service
        .send(SendRequest::new(alice(), "Read this").with_attachment(notes()))
        .await
        .unwrap();
    let second = service
        .send(
            SendRequest::new(alice(), "And the new version")
                .in_chat(first.chat_id)
                .with_attachment(Part::document(DocumentFormat::Txt, "Notes", b"v2".to_vec())),
        )
        .await
        .unwrap();
    let body = last_body(&fake);
    let names: Vec<&str> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .flat_map(|m| m["content"].as_array().expect("content"))
        .filter_map(|b| b.pointer("/document/name").and_then(Value::as_str))
        .collect();
    assert_eq!(names, ["notes", "Notes (2)"], "{body}");
    let stored = store
        .get_message(&alice(), second.message_uid)
        .await
        .unwrap();
    assert!(
        stored
            .parts
            .iter()
            .any(|p| matches!(p, Part::Document { name, .. } if name == "Notes")),
        "{:?}",
        stored.parts
    );
}
