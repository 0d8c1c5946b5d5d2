//! Citations through the HTTP API end to end: the real router on an ephemeral loopback
//! port, called with a real HTTP client, the model a `BedrockChatModel` for a Claude model
//! on `FakeBedrock`, which quotes the newest cited text document and cites it when the
//! request turns citations on (the server's `--citations`). In-memory store.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;
use support::{browser, Api};

use std::sync::Arc;

use base64::Engine as _;
use bedrock_chat_core::bedrock::BedrockConfig;
use bedrock_chat_core::testkit::FakeBedrock;
use bedrock_chat_core::{ChatPolicy, ChatService, InferenceConfig};
use bedrock_chat_examples::http::RouterSettings;
use bedrock_chat_store::InMemoryHistoryStore;
use reqwest::StatusCode;
use serde_json::{json, Value};

const CLAUDE: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";
const POLICY: &str = "Employees get 20 days of annual leave.\nAsk your manager first.";

/// A server whose sends ask for citations when `cite`.
async fn start(cite: bool) -> (String, FakeBedrock) {
    let fake = FakeBedrock::start().await.unwrap();
    let model = fake.chat_model(BedrockConfig::new(CLAUDE));
    let inference = InferenceConfig::new().with_citations(cite);
    let service = ChatService::builder(Arc::new(model), Arc::new(InMemoryHistoryStore::new()))
        .policy(ChatPolicy::default().with_inference(inference))
        .build();
    let base = support::serve_anonymous(service, &RouterSettings::default()).await;
    (base, fake)
}

fn question(chat_id: Option<&str>) -> Value {
    let data = base64::engine::general_purpose::STANDARD.encode(POLICY);
    let mut body = json!({
        "message": "How much leave do I get?",
        "attachments": [
            {"type": "document", "format": "text/plain", "name": "policy.txt", "data": data}
        ]
    });
    if let Some(chat_id) = chat_id {
        body["chat_id"] = json!(chat_id);
    }
    body
}

/// The citation every answer here carries: the first sentence of the policy sent as the
/// request's document `document_index` (the second is sent as "policy (2)": Bedrock takes
/// no two documents of one name in a request).
fn assert_the_policy_citation(citation: &Value, document_index: u64) {
    let title = match document_index {
        0 => "policy",
        _ => "policy (2)",
    };
    assert_eq!(
        citation["cited_text"],
        "Employees get 20 days of annual leave."
    );
    assert_eq!(citation["quote"], "Employees get 20 days of annual leave.");
    assert_eq!(citation["title"], title);
    assert_eq!(
        citation["location"],
        json!({"kind": "characters", "document_index": document_index, "start": 0, "end": 38})
    );
}

#[tokio::test]
async fn a_cited_answer_carries_its_citations_in_the_reply_the_stream_and_the_history() {
    let (base, fake) = start(true).await;
    let client = browser();
    let api = Api::with_client(&base, &client);

    // Whole.
    let (status, reply) = api.post("/api/v1/chats", &question(None)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let body = fake.last_request().unwrap().body;
    assert_eq!(
        body["messages"][0]["content"][0]["document"]["citations"],
        json!({"enabled": true}),
        "{body}"
    );
    let citations = reply["citations"].as_array().unwrap();
    assert_eq!(citations.len(), 1, "{reply}");
    assert_the_policy_citation(&citations[0], 0);
    let response = reply["response"].as_str().unwrap();
    let (start, end) = (
        citations[0]["start"].as_u64().unwrap() as usize,
        citations[0]["end"].as_u64().unwrap() as usize,
    );
    let cited: String = response.chars().skip(start).take(end - start).collect();
    assert_eq!(cited, "Employees get 20 days of annual leave.");

    // Streamed: the citation follows the words it names, before `done`. The question's
    // document is the request's second (the first question's is first).
    let chat_id = reply["chat_id"].as_str().unwrap();
    let events = api.stream(&question(Some(chat_id))).await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    let at = names
        .iter()
        .position(|n| *n == "citation")
        .expect("a citation event");
    assert_eq!(names.iter().filter(|n| **n == "citation").count(), 1);
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    let streamed: String = events[..at]
        .iter()
        .filter(|(name, _)| name == "delta")
        .map(|(_, data)| data["text"].as_str().unwrap())
        .collect();
    assert!(
        streamed.ends_with("Employees get 20 days of annual leave."),
        "{streamed:?}"
    );
    assert_the_policy_citation(&events[at].1, 1);
    let done = &events.last().unwrap().1;
    assert_the_policy_citation(&done["citations"][0], 1);

    // Stored: each answer's text part keeps its citation.
    let messages = api.messages(chat_id).await;
    assert_eq!(messages.len(), 4);
    for (answer, document_index) in [(&messages[1], 0), (&messages[3], 1)] {
        let parts = answer["parts"]
            .as_array()
            .expect("a cited answer has parts");
        assert_eq!(parts.len(), 1, "{answer}");
        assert_eq!(parts[0]["type"], "text");
        assert_eq!(parts[0]["text"], answer["content"]);
        assert_the_policy_citation(&parts[0]["citations"][0], document_index);
    }
    // The first answer went back as plain text, its citation left out.
    let body = fake.last_request().unwrap().body;
    assert!(
        body["messages"][1]["content"][0].get("text").is_some(),
        "{body}"
    );
    assert!(!body.to_string().contains("citationsContent"), "{body}");

    // The Markdown export lists the sources under each answer.
    let export = api
        .get_text(&format!(
            "/api/v1/conversations/{chat_id}/export?format=markdown"
        ))
        .await;
    for title in ["policy", "policy (2)"] {
        let source = format!(
            "1. “Employees get 20 days of annual leave.” ← “Employees get 20 days of annual \
             leave.” ({title}, characters 0–38)\n"
        );
        assert_eq!(export.matches(&source).count(), 1, "{source} in {export}");
    }
    assert_eq!(export.matches("**Sources**").count(), 2, "{export}");
}

#[tokio::test]
async fn without_citations_answers_have_none() {
    let (base, fake) = start(false).await;
    let api = Api::with_client(&base, &browser());
    let (status, reply) = api.post("/api/v1/chats", &question(None)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(reply.get("citations").is_none(), "{reply}");
    let body = fake.last_request().unwrap().body;
    assert!(body["messages"][0]["content"][0]["document"]
        .get("citations")
        .is_none());
    let messages = api.messages(reply["chat_id"].as_str().unwrap()).await;
    assert!(
        messages[1].get("parts").is_none(),
        "a plain answer: {}",
        messages[1]
    );
}
