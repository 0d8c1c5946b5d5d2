//! Citations end to end: documents sent with citations on through `ChatService` on
//! `BedrockChatModel` and `FakeBedrock` (through the real AWS SDK), the cited answer
//! stored with its citations, streamed and whole; and on the offline model.
#![cfg(all(feature = "bedrock", feature = "testkit"))]

use std::sync::Arc;
use std::time::Duration;

use bedrock_chat_core::bedrock::BedrockConfig;
use bedrock_chat_core::citation::{Citation, CitationLocation};
use bedrock_chat_core::parts::DocumentFormat;
use bedrock_chat_core::testkit::FakeBedrock;
use bedrock_chat_core::{
    ChatError, ChatModel, ChatReply, ChatService, HistoryStore, InferenceConfig, ModelError,
    OfflineChatModel, Part, SendRequest, StreamEvent, UserId,
};
use bedrock_chat_store::InMemoryHistoryStore;
use futures::StreamExt;
use serde_json::{json, Value};

const CLAUDE: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";
const NOVA: &str = "amazon.nova-lite-v1:0";
const POLICY: &str = "Leave policy\nEmployees get 20 days of annual leave. Ask your manager.";

fn alice() -> UserId {
    UserId::new("alice").expect("a valid user id")
}

fn config(model: &str) -> BedrockConfig {
    BedrockConfig::new(model).with_backoff(Duration::from_millis(5), Duration::from_millis(50))
}

fn citing() -> InferenceConfig {
    InferenceConfig::new().with_citations(true)
}

fn policy() -> Part {
    Part::document(DocumentFormat::Txt, "policy", POLICY.as_bytes().to_vec())
}

fn question() -> SendRequest {
    SendRequest::new(alice(), "How much leave do I get?")
        .with_attachment(policy())
        .with_inference(citing())
}

/// The citation FakeBedrock and the offline model make for [`POLICY`]: its first line.
fn expected_citation(document_index: u32) -> Citation {
    Citation::new(0, 0, "Leave policy")
        .with_title("policy")
        .with_location(CitationLocation::Characters {
            document_index,
            start: 0,
            end: 12,
        })
}

/// The reply's one text part and its citations; the span is checked against the text.
fn cited_part(reply: &ChatReply) -> (String, Vec<Citation>) {
    let texts: Vec<_> = reply
        .answer
        .parts
        .iter()
        .filter_map(|part| match part {
            Part::Text { text, citations } => Some((text.clone(), citations.clone())),
            _ => None,
        })
        .collect();
    match texts.as_slice() {
        [(text, citations)] => {
            assert_eq!(text, reply.text());
            (text.clone(), citations.clone())
        }
        other => panic!("not one text part: {other:?}"),
    }
}

/// A service on `model` at a new FakeBedrock, with an in-memory store.
async fn on_fake(model: &str) -> (FakeBedrock, InMemoryHistoryStore, ChatService) {
    let fake = FakeBedrock::start().await.expect("FakeBedrock starts");
    let store = InMemoryHistoryStore::new();
    let service = ChatService::builder(
        Arc::new(fake.chat_model(config(model))),
        Arc::new(store.clone()),
    )
    .build();
    (fake, store, service)
}

/// The events of a streamed send.
async fn streamed(service: &ChatService, request: SendRequest) -> Vec<StreamEvent> {
    service
        .send_stream(request)
        .await
        .expect("the send starts")
        .collect()
        .await
}

fn documents_citations(body: &Value) -> Vec<Value> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .flat_map(|m| m["content"].as_array().expect("content").iter())
        .filter_map(|block| block.get("document"))
        .map(|document| document.get("citations").cloned().unwrap_or(Value::Null))
        .collect()
}

/// Checks that `citations` are [`expected_citation`] spanning "Leave policy" in `text`.
fn assert_cites_the_policy(text: &str, citations: &[Citation], document_index: u32) {
    assert_eq!(citations.len(), 1, "{citations:?}");
    let citation = &citations[0];
    assert_eq!(
        citation.cited_in(text),
        "Leave policy",
        "{text:?} {citation:?}"
    );
    let expected = expected_citation(document_index);
    assert_eq!(
        (&citation.title, &citation.quote, &citation.location),
        (&expected.title, &expected.quote, &expected.location)
    );
}

#[tokio::test]
async fn a_streamed_answer_cites_the_document_and_keeps_its_citations() {
    let (fake, store, service) = on_fake(CLAUDE).await;

    let events = streamed(&service, question()).await;

    let body = fake.last_request().unwrap().body;
    assert_eq!(
        documents_citations(&body),
        [json!({"enabled": true})],
        "{body}"
    );
    // The citation comes after the words it supports, which it names.
    let mut streamed = String::new();
    let mut seen = Vec::new();
    for event in &events {
        match event {
            StreamEvent::Delta(text) => streamed.push_str(text),
            StreamEvent::Citation {
                citation,
                cited_text,
            } => {
                assert_eq!(cited_text, "Leave policy");
                assert_eq!(citation.cited_in(&streamed), "Leave policy");
                seen.push(citation.clone());
            }
            _ => {}
        }
    }
    assert_eq!(seen.len(), 1, "{events:?}");
    let Some(StreamEvent::Completed(reply)) = events.last() else {
        panic!("no reply: {events:?}");
    };
    assert_eq!(reply.text(), streamed);
    let (text, citations) = cited_part(reply);
    assert_eq!(citations, seen);
    assert_cites_the_policy(&text, &citations, 0);
    assert_eq!(reply.citations().len(), 1);
    assert_eq!(reply.citations()[0].0, "Leave policy");

    // Stored with the reply, and read back the same.
    let stored = store
        .get_message(&alice(), reply.response_session_id)
        .await
        .unwrap();
    assert_eq!(stored.parts, reply.answer.parts);
}

#[tokio::test]
async fn a_whole_answer_cites_the_document_and_the_next_turn_sends_the_text_alone() {
    let (fake, _, service) = on_fake(CLAUDE).await;

    let first = service.send(question()).await.unwrap();
    let (text, citations) = cited_part(&first);
    assert_cites_the_policy(&text, &citations, 0);
    assert!(
        text.starts_with("How much leave do I get?"),
        "the answer is the echo, then the quote: {text:?}"
    );

    // The next turn: the cited answer goes back as its text (Bedrock takes it), and a new
    // document is the second of the request.
    let handbook = Part::document(
        DocumentFormat::Md,
        "handbook",
        b"# Handbook\nWelcome aboard.".to_vec(),
    );
    let second = service
        .send(
            SendRequest::new(alice(), "And the handbook?")
                .in_chat(first.chat_id)
                .with_attachment(handbook)
                .with_inference(citing()),
        )
        .await
        .unwrap();
    let body = fake.last_request().unwrap().body;
    // (The prompt cache point that follows it is the conversation's stable prefix.)
    let answer_blocks = body["messages"][1]["content"]
        .as_array()
        .expect("the answer's blocks");
    assert_eq!(answer_blocks[0], json!({ "text": first.text() }), "{body}");
    assert!(answer_blocks[1..]
        .iter()
        .all(|b| b.get("cachePoint").is_some()));
    assert_eq!(
        documents_citations(&body),
        [json!({"enabled": true}), json!({"enabled": true})]
    );
    let (text, citations) = cited_part(&second);
    assert_eq!(citations.len(), 1);
    assert_eq!(citations[0].cited_in(&text), "# Handbook");
    assert_eq!(
        citations[0].location,
        Some(CitationLocation::Characters {
            document_index: 1,
            start: 0,
            end: 10
        })
    );
}

#[tokio::test]
async fn without_citations_asked_documents_go_as_before_and_answers_are_plain() {
    let (fake, _, service) = on_fake(CLAUDE).await;
    let reply = service
        .send(SendRequest::new(alice(), "How much leave?").with_attachment(policy()))
        .await
        .unwrap();
    let body = fake.last_request().unwrap().body;
    assert_eq!(documents_citations(&body), [Value::Null]);
    assert!(reply.answer.parts.is_empty(), "{:?}", reply.answer.parts);
    assert!(reply.citations().is_empty());
}

#[tokio::test]
async fn a_model_that_does_not_cite_gets_its_documents_without_citations() {
    let (fake, _, service) = on_fake(NOVA).await;
    let reply = service.send(question()).await.unwrap();
    let body = fake.last_request().unwrap().body;
    assert_eq!(documents_citations(&body), [Value::Null], "{body}");
    assert!(reply.citations().is_empty());
}

#[tokio::test]
async fn fake_bedrock_refuses_citations_for_a_model_that_does_not_cite() {
    // What Bedrock answers a client that turns citations on where they are not offered.
    use aws_sdk_bedrockruntime::primitives::Blob;
    use aws_sdk_bedrockruntime::types::{
        CitationsConfig, ContentBlock, ConversationRole, DocumentBlock, DocumentFormat as Format,
        DocumentSource, Message,
    };
    let fake = FakeBedrock::start().await.unwrap();
    let document = DocumentBlock::builder()
        .format(Format::Txt)
        .name("policy")
        .source(DocumentSource::Bytes(Blob::new(POLICY.as_bytes())))
        .citations(CitationsConfig::builder().enabled(true).build().unwrap())
        .build()
        .unwrap();
    let message = Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Document(document))
        .content(ContentBlock::Text("How much leave?".into()))
        .build()
        .unwrap();
    let error = fake
        .client()
        .converse()
        .model_id(NOVA)
        .messages(message)
        .send()
        .await
        .unwrap_err();
    let error = error.into_service_error();
    assert!(error.is_validation_exception(), "{error:?}");
    assert!(
        error.to_string().contains("does not support citations"),
        "{error}"
    );
}

#[tokio::test]
async fn a_failed_cited_stream_stores_nothing() {
    use bedrock_chat_core::testkit::Fault;
    let (fake, store, service) = on_fake(CLAUDE).await;
    fake.push_fault(Fault::exception_after(
        2,
        "modelStreamErrorException",
        "the model broke off",
    ));
    let events = streamed(&service, question()).await;
    assert!(
        matches!(
            events.last(),
            Some(StreamEvent::Failed(ChatError::Model(
                ModelError::ModelFailure { .. }
            ))) | Some(StreamEvent::Failed(ChatError::Model(_)))
        ),
        "{events:?}"
    );
    let chats = store
        .list_conversations(&alice(), Default::default())
        .await
        .unwrap();
    assert!(chats.items.is_empty(), "nothing stored: {:?}", chats.items);
}

#[tokio::test]
async fn the_offline_model_cites_too_streamed_and_whole() {
    let model: Arc<dyn ChatModel> = Arc::new(OfflineChatModel::new());
    let store = InMemoryHistoryStore::new();
    let service = ChatService::builder(model, Arc::new(store.clone())).build();

    let whole = service.send(question()).await.unwrap();
    let (text, citations) = cited_part(&whole);
    assert_cites_the_policy(&text, &citations, 0);

    let streamed = service
        .send_stream(question())
        .await
        .unwrap()
        .collect_reply()
        .await
        .unwrap();
    let (streamed_text, streamed_citations) = cited_part(&streamed);
    assert_eq!((streamed_text, streamed_citations), (text, citations));
}
