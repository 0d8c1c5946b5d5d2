//! Reasoning through the HTTP API end to end: the real router on an ephemeral loopback
//! port, called with a real HTTP client, the model a `BedrockChatModel` for a Claude model
//! on `FakeBedrock`, which reasons ("Thinking about: QUESTION", signed) when a request turns
//! thinking on, and records what it was sent. In-memory store.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;
use support::{browser, Api};

use std::sync::Arc;

use bedrock_chat_core::bedrock::BedrockConfig;
use bedrock_chat_core::testkit::FakeBedrock;
use bedrock_chat_core::{ChatPolicy, ChatService, InferenceConfig, Quota};
use bedrock_chat_examples::http::RouterSettings;
use bedrock_chat_ratelimit::InMemoryRateLimiter;
use bedrock_chat_store::InMemoryHistoryStore;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A model that takes extended thinking.
const CLAUDE: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";

struct Server {
    base: String,
    fake: FakeBedrock,
}

/// A server whose sends are made under `inference` (the flags' sampling settings).
async fn start(inference: InferenceConfig) -> Server {
    let fake = FakeBedrock::start().await.unwrap();
    let model = fake.chat_model(BedrockConfig::new(CLAUDE));
    let service = ChatService::builder(Arc::new(model), Arc::new(InMemoryHistoryStore::new()))
        .request_limiter(Arc::new(InMemoryRateLimiter::new(
            Quota::per_minute(1000).unwrap(),
        )))
        .policy(ChatPolicy::default().with_inference(inference))
        .build();
    let base = support::serve_anonymous(service, &RouterSettings::default()).await;
    Server { base, fake }
}

impl Server {
    fn api(&self, client: &reqwest::Client) -> Api {
        Api::with_client(&self.base, client)
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        self.api(client).post(path, body).await
    }

    /// A streamed send's events.
    async fn stream(&self, client: &reqwest::Client, body: &Value) -> Vec<(String, Value)> {
        self.api(client).stream(body).await
    }

    /// The messages of conversation `chat_id`, oldest first.
    async fn messages(&self, client: &reqwest::Client, chat_id: &str) -> Vec<Value> {
        self.api(client).messages(chat_id).await
    }

    async fn conversation_count(&self, client: &reqwest::Client) -> usize {
        let body = self.api(client).get_json("/api/v1/conversations").await;
        body["conversations"].as_array().unwrap().len()
    }
}

/// The text of the events named `name`, joined.
fn joined(events: &[(String, Value)], name: &str) -> String {
    events
        .iter()
        .filter(|(event, _)| event == name)
        .map(|(_, data)| data["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_streamed_send_streams_reasoning_before_the_answer_and_stores_it_with_the_answer() {
    let server = start(InferenceConfig::new()).await;
    let client = browser();
    let question = "Why is the sea salty?";
    let events = server
        .stream(
            &client,
            &json!({"message": question, "reasoning_budget": 2048}),
        )
        .await;

    // start, reasoning…, delta…, done: each kind together, in that order.
    let mut kinds: Vec<&str> = events.iter().map(|(event, _)| event.as_str()).collect();
    assert!(kinds.contains(&"reasoning"), "{kinds:?}");
    kinds.dedup();
    assert_eq!(kinds, ["start", "reasoning", "delta", "done"]);
    for (event, data) in &events {
        if event == "reasoning" || event == "delta" {
            let keys: Vec<&String> = data.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["text"], "{event} is {{\"text\"}} alone");
        }
    }
    let pieces = events
        .iter()
        .filter(|(event, _)| event == "reasoning")
        .count();
    assert!(pieces > 1, "the reasoning streams in pieces: {pieces}");
    let reasoning = joined(&events, "reasoning");
    assert_eq!(reasoning, format!("Thinking about: {question}"));
    let answer = joined(&events, "delta");
    let done = &events.last().unwrap().1;
    assert_eq!(done["reasoning"], reasoning.as_str());
    assert_eq!(done["response"], answer.as_str());
    assert!(
        !answer.contains("Thinking about"),
        "the answer is apart: {answer}"
    );

    // The model was asked to think, with the budget given.
    let sent = server.fake.last_request().unwrap().body;
    assert_eq!(
        sent["additionalModelRequestFields"]["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );

    // Stored with the answer: reasoning, then text; the API shows no signature.
    let chat_id = done["chat_id"].as_str().unwrap();
    let messages = server.messages(&client, chat_id).await;
    assert_eq!(messages.len(), 2);
    let stored = &messages[1];
    assert_eq!(stored["content"], answer.as_str());
    assert_eq!(
        stored["parts"],
        json!([
            {"type": "reasoning", "text": reasoning},
            {"type": "text", "text": answer},
        ])
    );
    assert!(
        messages[0].get("parts").is_none(),
        "the question is text only"
    );
}

#[tokio::test]
async fn the_next_turn_sends_the_signed_reasoning_back_to_the_model() {
    let server = start(InferenceConfig::new()).await;
    let client = browser();
    let (status, first) = server
        .post(
            &client,
            "/api/v1/chats",
            &json!({"message": "Think about tides", "reasoning_budget": 1024}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let reasoning = first["reasoning"].as_str().unwrap();
    assert_eq!(reasoning, "Thinking about: Think about tides");
    let chat_id = first["chat_id"].as_str().unwrap();

    let (status, second) = server
        .post(
            &client,
            "/api/v1/chats",
            &json!({"message": "And the moon?", "chat_id": chat_id, "reasoning_budget": 1024}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let sent = server.fake.last_request().unwrap().body;
    let turns = sent["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{sent}");
    assert_eq!(turns[1]["role"], "assistant");
    let content = turns[1]["content"].as_array().unwrap();
    let text = &content[0]["reasoningContent"]["reasoningText"];
    assert_eq!(text["text"], reasoning, "{sent}");
    let signature = text["signature"].as_str().unwrap_or_default();
    assert!(
        !signature.is_empty(),
        "the reasoning goes back signed: {sent}"
    );
    assert_eq!(content[1]["text"], first["response"]);
    assert_eq!(
        second["reasoning"].as_str().unwrap(),
        "Thinking about: And the moon?"
    );
}

#[tokio::test]
async fn the_servers_budget_applies_to_every_send_and_replies_without_reasoning_keep_their_shape() {
    let server = start(InferenceConfig::new().with_reasoning_budget(2048)).await;
    let client = browser();
    let (status, reply) = server
        .post(&client, "/api/v1/chats", &json!({"message": "Hello"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["reasoning"], "Thinking about: Hello");

    // No budget anywhere: no reasoning field at all, as before.
    let plain = start(InferenceConfig::new()).await;
    let (status, reply) = plain
        .post(&client, "/api/v1/chats", &json!({"message": "Hello"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(reply.get("reasoning").is_none(), "{reply}");
    let sent = plain.fake.last_request().unwrap().body;
    assert!(sent.get("additionalModelRequestFields").is_none(), "{sent}");
    let events = plain.stream(&client, &json!({"message": "Hello"})).await;
    assert!(events.iter().all(|(event, _)| event != "reasoning"));
    assert!(events.last().unwrap().1.get("reasoning").is_none());
    let chat_id = reply["chat_id"].as_str().unwrap();
    let messages = plain.messages(&client, chat_id).await;
    assert!(messages.iter().all(|m| m.get("parts").is_none()));
}

#[tokio::test]
async fn bad_reasoning_budgets_are_refused_naming_the_field_and_nothing_is_stored() {
    let server = start(InferenceConfig::new().with_max_tokens(4096)).await;
    let mut sampled = InferenceConfig::new();
    sampled.temperature = Some(0.5);
    let sampling = start(sampled).await;
    let client = browser();
    let rows: [(&Server, Value); 8] = [
        (&server, json!(1023)),
        (&server, json!(0)),
        (&server, json!(-1)),
        (&server, json!(1.5)),
        (&server, json!("2048")),
        (&server, json!(4_294_967_296_u64)),
        // Not less than the server's --max-tokens.
        (&server, json!(4096)),
        // The server sets --temperature.
        (&sampling, json!(2048)),
    ];
    for (target, budget) in rows {
        for path in ["/api/v1/chats", "/api/v1/chats/stream"] {
            let (status, body) = target
                .post(
                    &client,
                    path,
                    &json!({"message": "hi", "reasoning_budget": budget}),
                )
                .await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{budget} to {path}: {body}"
            );
            assert_eq!(body["error"], "Invalid request", "{body}");
            assert_eq!(body["field"], "reasoning_budget", "{budget}: {body}");
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains("reasoning_budget"),
                "{body}"
            );
        }
    }
    assert_eq!(server.conversation_count(&client).await, 0);
    assert_eq!(sampling.conversation_count(&client).await, 0);
    assert_eq!(server.fake.request_count(), 0, "the model was never called");
    assert_eq!(sampling.fake.request_count(), 0);

    // Under the limits it goes through.
    let (status, body) = server
        .post(
            &client,
            "/api/v1/chats",
            &json!({"message": "hi", "reasoning_budget": 4095}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
