//! Attachments through the HTTP API end to end: the real router on an ephemeral loopback
//! port, called with a real HTTP client, the model a `BedrockChatModel` on `FakeBedrock`
//! (which records what it was sent). In-memory store, no service needed.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;
use support::{browser, parse_sse};

use std::sync::Arc;

use base64::Engine as _;
use bedrock_chat_core::bedrock::BedrockConfig;
use bedrock_chat_core::testkit::FakeBedrock;
use bedrock_chat_core::{ChatService, Quota};
use bedrock_chat_examples::http::RouterSettings;
use bedrock_chat_ratelimit::InMemoryRateLimiter;
use bedrock_chat_store::InMemoryHistoryStore;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A 1x1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
/// The start of a JPEG: its signature is all that tells it from a PNG.
const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00";
const NOTES: &str = "Minutes: we met; we agreed.\n";

struct Server {
    base: String,
    fake: FakeBedrock,
}

async fn start(max_body_bytes: usize, max_attachment_body_bytes: usize) -> Server {
    let fake = FakeBedrock::start().await.unwrap();
    let model = fake.chat_model(BedrockConfig::new("amazon.nova-micro-v1:0"));
    let store = InMemoryHistoryStore::new();
    let service = ChatService::builder(Arc::new(model), Arc::new(store))
        .request_limiter(Arc::new(InMemoryRateLimiter::new(
            Quota::per_minute(1000).unwrap(),
        )))
        .build();
    let settings = RouterSettings {
        max_body_bytes,
        max_attachment_body_bytes,
        ..RouterSettings::default()
    };
    let base = support::serve_anonymous(service, &settings).await;
    Server { base, fake }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn png() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(PNG)
        .unwrap()
}

/// A message with a png and a txt document.
fn with_attachments(message: &str) -> Value {
    json!({
        "message": message,
        "attachments": [
            {"type": "image", "format": "png", "data": PNG},
            {"type": "document", "format": "text/plain", "name": "notes.txt", "data": b64(NOTES.as_bytes())}
        ]
    })
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let response = client.post(self.url(path)).json(body).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get_json(&self, client: &reqwest::Client, path: &str) -> (StatusCode, Value) {
        let response = client.get(self.url(path)).send().await.unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// The caller's conversations: none after a refused send.
    async fn conversation_count(&self, client: &reqwest::Client) -> usize {
        let (status, body) = self.get_json(client, "/api/v1/conversations").await;
        assert_eq!(status, StatusCode::OK);
        body["conversations"].as_array().unwrap().len()
    }

    /// Checks that the user message of conversation `chat_id` has the png and the
    /// document, downloadable byte for byte; returns the user message.
    async fn check_stored(&self, client: &reqwest::Client, chat_id: &str, text: &str) -> Value {
        let (status, page) = self
            .get_json(client, &format!("/api/v1/conversations/{chat_id}/messages"))
            .await;
        assert_eq!(status, StatusCode::OK);
        let question = page["items"][0].clone();
        let id = question["message_id"].as_str().unwrap();
        assert_eq!(question["content"], text);
        let base = format!("/api/v1/messages/{id}/parts");
        assert_eq!(
            question["parts"],
            // The attachments in the order sent, then the text (as the service keeps them).
            json!([
                {"type": "image", "format": "png", "size": png().len(), "url": format!("{base}/0")},
                {"type": "document", "format": "txt", "name": "notes", "size": NOTES.len(), "url": format!("{base}/1")},
                {"type": "text", "text": text}
            ]),
            "{question}"
        );
        // The reply is plain text: today's shape, no `parts`.
        assert!(page["items"][1].get("parts").is_none(), "{page}");

        let image = client
            .get(self.url(&format!("{base}/0")))
            .send()
            .await
            .unwrap();
        assert_eq!(image.status(), StatusCode::OK);
        let headers = image.headers().clone();
        assert_eq!(headers["content-type"], "image/png");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cache-control"], "private");
        assert!(headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline"));
        assert_eq!(image.bytes().await.unwrap().as_ref(), png().as_slice());

        let document = client
            .get(self.url(&format!("{base}/1")))
            .send()
            .await
            .unwrap();
        assert_eq!(document.status(), StatusCode::OK);
        let headers = document.headers().clone();
        assert_eq!(headers["content-type"], "text/plain");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cache-control"], "private");
        assert!(headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"notes.txt\""));
        assert_eq!(document.text().await.unwrap(), NOTES);
        question
    }

    /// Checks that the model's last request held the png and the document as content
    /// blocks of the user's turn.
    fn check_model_saw_them(&self) {
        let request = self.fake.last_request().unwrap();
        let content = request.body["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_array()
            .unwrap()
            .clone();
        let image = content.iter().find_map(|b| b.get("image")).unwrap();
        assert_eq!(image["format"], "png");
        assert_eq!(image["source"]["bytes"], PNG);
        let document = content.iter().find_map(|b| b.get("document")).unwrap();
        assert_eq!(document["format"], "txt");
        assert_eq!(document["name"], "notes");
        assert_eq!(document["source"]["bytes"], b64(NOTES.as_bytes()));
    }
}

#[tokio::test]
async fn a_send_with_a_png_and_a_document_stores_them_and_the_model_gets_them() {
    // The body limit of other routes is far below what these sends carry.
    let server = start(256, 1024 * 1024).await;
    let client = browser();
    let text = "What do these say?";
    let (status, body) = server
        .post(&client, "/api/v1/chats", &with_attachments(text))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["metadata"]["question"], text);
    server.check_model_saw_them();
    let chat_id = body["chat_id"].as_str().unwrap();
    let question = server.check_stored(&client, chat_id, text).await;

    // The same parts in seed 000's history and in the exports, never the bytes.
    let id = question["message_id"].as_str().unwrap();
    let (status, history) = server
        .get_json(&client, &format!("/api/v1/my-history?message_id={id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["message"]["parts"], question["parts"]);
    let (status, export) = server
        .get_json(&client, &format!("/api/v1/conversations/{chat_id}/export"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(export["messages"][0]["parts"], question["parts"]);
    assert!(!export.to_string().contains(PNG), "no bytes in the export");
    let markdown = client
        .get(server.url(&format!(
            "/api/v1/conversations/{chat_id}/export?format=markdown"
        )))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        markdown.contains(&format!("- image (png, {} bytes)", png().len())),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!("- document “notes” (txt, {} bytes)", NOTES.len())),
        "{markdown}"
    );

    // Deleting the conversation takes its attachments with it.
    let url = server.url(&format!("/api/v1/messages/{id}/parts/0"));
    let deleted = client
        .delete(server.url(&format!("/api/v1/conversations/{chat_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_streamed_send_with_attachments_stores_them_and_the_model_gets_them() {
    let server = start(256, 1024 * 1024).await;
    let client = browser();
    let text = "Summarise, please";
    let response = client
        .post(server.url("/api/v1/chats/stream"))
        .json(&with_attachments(text))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events = parse_sse(&response.text().await.unwrap());
    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done", "{events:?}");
    server.check_model_saw_them();
    let chat_id = done["chat_id"].as_str().unwrap();
    server.check_stored(&client, chat_id, text).await;
}

#[tokio::test]
async fn a_refused_attachment_is_a_clear_error_and_stores_nothing() {
    let server = start(64 * 1024, 128 * 1024).await;
    let client = browser();
    let image = |format: &str, data: &str| json!({"type": "image", "format": format, "data": data});
    let too_many: Vec<Value> = (0..21).map(|_| image("png", PNG)).collect();
    let oversized = "A".repeat(200 * 1024);
    let cases = [
        (image("png", "not base64!"), 400, "attachments[0].data"),
        (image("bmp", PNG), 415, "attachments[0].format"),
        (
            json!({"type": "document", "format": "application/x-tar", "data": b64(b"x")}),
            415,
            "attachments[0].format",
        ),
        (image("png", &b64(JPEG)), 415, "attachments[0]"),
        (
            json!({"type": "video", "format": "mp4", "data": PNG}),
            400,
            "attachments[0].type",
        ),
        (Value::Array(too_many), 413, "attachments[20]"),
        (image("png", &oversized), 413, ""),
    ];
    let fake_calls = server.fake.request_count();
    for path in ["/api/v1/chats", "/api/v1/chats/stream"] {
        for (attachments, status, field) in &cases {
            let attachments = match attachments {
                Value::Array(_) => attachments.clone(),
                one => json!([one]),
            };
            let body = json!({"message": "Look", "attachments": attachments});
            let (got, error) = server.post(&client, path, &body).await;
            assert_eq!(got.as_u16(), *status, "{path} {field}: {error}");
            if field.is_empty() {
                assert_eq!(error["error"], "Payload too large", "{error}");
            } else {
                assert_eq!(error["field"], *field, "{path}: {error}");
            }
            assert!(error["message"].as_str().is_some(), "{error}");
            assert_eq!(
                server.conversation_count(&client).await,
                0,
                "{path} {field}"
            );
        }
    }
    assert_eq!(
        server.fake.request_count(),
        fake_calls,
        "no refused send reached the model"
    );

    // Other routes keep the smaller limit.
    let (status, body) = server
        .post(&client, "/chat", &json!({"message": "x".repeat(70 * 1024)}))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn another_users_attachment_is_not_found_as_a_missing_one_is() {
    let server = start(64 * 1024, 1024 * 1024).await;
    let owner = browser();
    let (status, body) = server
        .post(&owner, "/api/v1/chats", &with_attachments("Mine"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["message_uid"].as_str().unwrap();
    let url = |index: &str| format!("/api/v1/messages/{id}/parts/{index}");

    let stranger = browser();
    let (theirs, theirs_body) = server.get_json(&stranger, &url("0")).await;
    let missing = format!(
        "/api/v1/messages/{}/parts/1",
        "0192f8a0-0000-7000-8000-000000000000"
    );
    let (none, none_body) = server.get_json(&owner, &missing).await;
    assert_eq!(theirs, StatusCode::NOT_FOUND);
    assert_eq!((theirs, theirs_body), (none, none_body));

    // The owner's text part and an index past the end are not attachments.
    for index in ["2", "3"] {
        let (status, body) = server.get_json(&owner, &url(index)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{index}: {body}");
    }
    let (status, body) = server.get_json(&owner, &url("x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "index");
    // The owner still has them.
    let document = owner.get(server.url(&url("1"))).send().await.unwrap();
    assert_eq!(document.status(), StatusCode::OK);
    assert_eq!(document.text().await.unwrap(), NOTES);
}
