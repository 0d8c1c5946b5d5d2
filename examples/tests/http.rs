//! The HTTP API end to end: the real router served on an ephemeral loopback port, called
//! with a real HTTP client. In-memory store and limiter, the offline model (or a mock
//! model for failures), no service needed.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;
use support::{browser, parse_sse};

use std::sync::Arc;
use std::time::Duration;

use bedrock_chat_core::{
    ChatModel, ChatService, HistoryStore, ListOptions, MockChatModel, ModelError, ModelRequest,
    ModelResponse, ModelStream, OfflineChatModel, Quota, UserId,
};
use bedrock_chat_examples::http::{ApiKeys, AppState, Authenticator, Metrics, RouterSettings};
use bedrock_chat_ratelimit::InMemoryRateLimiter;
use bedrock_chat_store::InMemoryHistoryStore;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Server {
    base: String,
    store: InMemoryHistoryStore,
    service: ChatService,
}

struct Options {
    auth: Authenticator,
    limit: u64,
    model: Arc<dyn ChatModel>,
    max_body_bytes: usize,
    request_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            auth: Authenticator::Anonymous {
                secure_cookies: false,
                trust_forwarded_for: false,
            },
            limit: 1000,
            model: Arc::new(OfflineChatModel::new()),
            max_body_bytes: 64 * 1024,
            request_timeout: RouterSettings::default().request_timeout,
        }
    }
}

async fn start(options: Options) -> Server {
    let store = InMemoryHistoryStore::new();
    let service = ChatService::builder(options.model, Arc::new(store.clone()))
        .request_limiter(Arc::new(InMemoryRateLimiter::new(
            Quota::per_minute(options.limit).unwrap(),
        )))
        .policy(bedrock_chat_core::ChatPolicy::default().with_max_message_chars(20_000))
        .build();
    let state = AppState {
        service: service.clone(),
        auth: Arc::new(options.auth),
        metrics: Metrics::new(),
    };
    // The sends' own (attachment) body limit too: these tests send no attachments, and the
    // bad-input table's "body over the byte limit" row is about the send route.
    let settings = RouterSettings {
        max_body_bytes: options.max_body_bytes,
        max_attachment_body_bytes: options.max_body_bytes,
        request_timeout: options.request_timeout,
        ..RouterSettings::default()
    };
    let base = support::serve(state, &settings).await;
    Server {
        base,
        store,
        service,
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The Prometheus text of `GET /metrics`.
    async fn metrics(&self, client: &reqwest::Client) -> String {
        let response = client.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    async fn send(&self, client: &reqwest::Client, body: Value) -> (StatusCode, Value) {
        let response = client
            .post(self.url("/api/v1/chats"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

async fn json_of(response: reqwest::Response) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn a_send_answers_in_seed_000s_shape_with_rate_limit_headers() {
    let server = start(Options {
        limit: 10,
        ..Options::default()
    })
    .await;
    let client = browser();
    let response = client
        .post(server.url("/api/v1/chats"))
        .json(&json!({"message": "What are the top security vulnerabilities?"}))
        .send()
        .await
        .unwrap();
    let (status, headers, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success");
    assert!(body["response"].as_str().unwrap().contains("offline model"));
    for field in ["chat_id", "message_uid", "response_session_id"] {
        assert!(
            uuid::Uuid::parse_str(body[field].as_str().unwrap()).is_ok(),
            "{field}"
        );
    }
    assert_eq!(body["model"], "offline");
    assert_eq!(
        body["metadata"]["question"],
        "What are the top security vulnerabilities?"
    );
    assert_eq!(body["metadata"]["bedrock_processed"], true);
    assert!(body["metadata"]["timestamp"].is_string());
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(headers["x-ratelimit-limit"], "10");
    assert_eq!(headers["x-ratelimit-remaining"], "9");
    assert_eq!(headers["x-ratelimit-window"], "60");
    assert!(headers.contains_key("ratelimit"));
    assert!(headers.contains_key("ratelimit-policy"));
    assert!(headers.contains_key("x-request-id"));
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));

    // The same browser continues the conversation and sees it listed.
    let chat_id = body["chat_id"].as_str().unwrap().to_owned();
    let (status, second) = server
        .send(&client, json!({"message": "And more?", "chat_id": chat_id}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["chat_id"], chat_id.as_str());
    let (_, headers, list) = json_of(
        client
            .get(server.url("/api/v1/conversations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["conversations"][0]["chat_id"], chat_id.as_str());
    assert_eq!(list["conversations"][0]["message_count"], 4);
    // A GET spends nothing but still shows where the caller stands.
    assert_eq!(headers["x-ratelimit-remaining"], "8");
}

#[tokio::test]
async fn a_retry_with_the_same_message_uid_returns_the_stored_exchange() {
    let server = start(Options::default()).await;
    let client = browser();
    let uid = uuid::Uuid::now_v7().to_string();
    let (_, first) = server
        .send(&client, json!({"message": "once", "message_uid": uid}))
        .await;
    let (status, again) = server
        .send(&client, json!({"message": "once", "message_uid": uid}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["response_session_id"], first["response_session_id"]);
    assert_eq!(again["replayed"], true);
}

async fn sse_events(response: reqwest::Response) -> Vec<(String, Value)> {
    let text = response.text().await.unwrap();
    parse_sse(&text)
}

#[tokio::test]
async fn a_streamed_send_sends_ids_then_deltas_then_the_reply() {
    let server = start(Options::default()).await;
    let client = browser();
    let response = client
        .post(server.url("/api/v1/chats/stream"))
        .json(&json!({"message": "Tell me a story"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    assert!(response.headers().contains_key("x-ratelimit-remaining"));
    let events = sse_events(response).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"start"));
    assert_eq!(names.last(), Some(&"done"));
    assert!(
        names.iter().filter(|n| **n == "delta").count() >= 2,
        "{names:?}"
    );
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "delta")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    let done = &events.last().unwrap().1;
    assert_eq!(done["response"], text.as_str());
    assert_eq!(done["chat_id"], events[0].1["chat_id"]);
    assert_eq!(done["status"], "success");
}

#[tokio::test]
async fn a_stream_that_fails_midway_sends_an_error_event_and_stores_nothing() {
    let mut model = MockChatModel::new();
    model.expect_model_id().return_const("mock".to_owned());
    model.expect_converse_stream().returning(|_| {
        Ok(futures::stream::iter(vec![
            Ok(bedrock_chat_core::ModelEvent::TextDelta("half an ".into())),
            Err(ModelError::model_failure("the model broke off")),
        ])
        .boxed())
    });
    let server = start(Options {
        model: Arc::new(model),
        ..Options::default()
    })
    .await;
    let client = browser();
    let response = client
        .post(server.url("/api/v1/chats/stream"))
        .json(&json!({"message": "go"}))
        .send()
        .await
        .unwrap();
    let events = sse_events(response).await;
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["error"], "Model error");
    assert!(conversations_of(&server, &client).await.is_empty());
}

#[tokio::test]
async fn a_client_that_goes_away_midstream_still_gets_its_reply_stored() {
    let server = start(Options {
        model: Arc::new(
            OfflineChatModel::new()
                .with_words_per_delta(1)
                .with_delta_delay(Duration::from_millis(20)),
        ),
        ..Options::default()
    })
    .await;
    let client = browser();
    let response = client
        .post(server.url("/api/v1/chats/stream"))
        .json(&json!({"message": "a long answer please"}))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    // Read the start event and a delta, then hang up.
    let mut seen = String::new();
    while !seen.contains("event: delta") {
        seen.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    let chat_id: bedrock_chat_core::ChatId = parse_sse(&seen)[0].1["chat_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    drop(body);
    // The reply is still being generated; the server's service finishes and stores it.
    server.service.shutdown().await;
    let (status, _, conversation) = json_of(
        client
            .get(server.url(&format!("/api/v1/conversations/{chat_id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{conversation}");
    assert_eq!(
        conversation["message_count"], 2,
        "question and reply stored"
    );
}

/// The offline model, answering after `delay`.
struct SlowModel {
    delay: Duration,
    offline: OfflineChatModel,
}

#[async_trait::async_trait]
impl ChatModel for SlowModel {
    fn model_id(&self) -> &str {
        "slow"
    }

    async fn converse(&self, request: ModelRequest) -> Result<ModelResponse, ModelError> {
        tokio::time::sleep(self.delay).await;
        self.offline.converse(request).await
    }

    async fn converse_stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError> {
        tokio::time::sleep(self.delay).await;
        self.offline.converse_stream(request).await
    }
}

#[tokio::test]
async fn a_request_over_the_timeout_is_a_504_counted_in_the_metrics_and_stores_nothing() {
    let server = start(Options {
        model: Arc::new(SlowModel {
            delay: Duration::from_secs(5),
            offline: OfflineChatModel::new(),
        }),
        request_timeout: Duration::from_millis(200),
        ..Options::default()
    })
    .await;
    let client = browser();
    let (status, _, body) = json_of(
        client
            .post(server.url("/api/v1/chats"))
            .json(&json!({"message": "take your time"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"], "Request timeout");
    assert_eq!(body["message"], "the request took longer than 200ms");
    // The send was abandoned with its request: no conversation, no half exchange.
    assert!(conversations_of(&server, &client).await.is_empty());
    let metrics = server.metrics(&client).await;
    assert!(
        metrics.contains("bedrock_chat_http_requests_total{route=\"/api/v1/chats\",method=\"POST\",status=\"504\"} 1"),
        "{metrics}"
    );
}

/// The conversations the browser `client` sees.
async fn conversations_of(server: &Server, client: &reqwest::Client) -> Vec<Value> {
    let (_, _, list) = json_of(
        client
            .get(server.url("/api/v1/conversations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    list["conversations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn seed_003s_stateless_chat_answers_and_stores_nothing() {
    let server = start(Options::default()).await;
    let client = browser();
    let response = client
        .post(server.url("/chat"))
        .json(&json!({"message": "When is the next train?", "system_prompt": "You are an MTA assistant."}))
        .send()
        .await
        .unwrap();
    let (status, headers, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["response"].is_string());
    assert_eq!(body["model"], "offline");
    assert!(headers.contains_key("x-ratelimit-limit"));
    assert!(
        conversations_of(&server, &client).await.is_empty(),
        "nothing stored"
    );
    let (_, _, usage) = json_of(
        client
            .get(server.url("/api/v1/usage"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(usage["calls"], 1, "but the call is in the ledger: {usage}");
}

#[tokio::test]
async fn over_the_limit_is_a_429_in_seed_003s_shape() {
    let server = start(Options {
        limit: 2,
        ..Options::default()
    })
    .await;
    let client = browser();
    for _ in 0..2 {
        let (status, _) = server.send(&client, json!({"message": "hi"})).await;
        assert_eq!(status, StatusCode::OK);
    }
    let response = client
        .post(server.url("/chat"))
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    let (status, headers, body) = json_of(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "Rate limit exceeded");
    assert_eq!(
        body["message"],
        "Too many requests. Maximum 2 requests per 60 seconds."
    );
    let retry_after = body["retry_after"].as_u64().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(headers["retry-after"], retry_after.to_string().as_str());
    assert_eq!(headers["x-ratelimit-remaining"], "0");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let server = start(Options {
        max_body_bytes: 64 * 1024,
        ..Options::default()
    })
    .await;
    let client = browser();
    let post = |body: reqwest::Body, content_type: &'static str| {
        client
            .post(server.url("/api/v1/chats"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases: Vec<(reqwest::Body, &str, StatusCode, Option<&str>)> = vec![
        (
            "not json".into(),
            "application/json",
            StatusCode::BAD_REQUEST,
            Some("body"),
        ),
        (
            r#"{"message": 5}"#.into(),
            "application/json",
            StatusCode::BAD_REQUEST,
            Some("message"),
        ),
        (
            r#"{}"#.into(),
            "application/json",
            StatusCode::BAD_REQUEST,
            Some("message"),
        ),
        (
            r#"{"message": "  \n\t "}"#.into(),
            "application/json",
            StatusCode::BAD_REQUEST,
            Some("message"),
        ),
        (
            json!({"message": "x".repeat(20_001)}).to_string().into(),
            "application/json",
            StatusCode::BAD_REQUEST,
            Some("message"),
        ),
        (
            r#"{"message": "hi", "chat_id": "not-a-uuid"}"#.into(),
            "application/json",
            StatusCode::BAD_REQUEST,
            Some("chat_id"),
        ),
        (
            r#"{"message": "hi", "message_uid": "123"}"#.into(),
            "application/json",
            StatusCode::BAD_REQUEST,
            Some("message_uid"),
        ),
        (
            json!({"message": "x".repeat(70_000)}).to_string().into(),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
        (
            r#"{"message": "hi"}"#.into(),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
        ),
    ];
    for (body, content_type, want, field) in cases {
        let (status, _, answer) = json_of(post(body, content_type).await.unwrap()).await;
        assert_eq!(status, want, "{answer}");
        assert!(
            answer["error"].is_string() && answer["message"].is_string(),
            "{answer}"
        );
        if let Some(field) = field {
            assert_eq!(answer["field"], field, "{answer}");
        }
    }
    let unknown = uuid::Uuid::now_v7();
    let (status, answer) = server
        .send(&client, json!({"message": "hi", "chat_id": unknown}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    for path in [
        "/api/v1/conversations/nope".to_owned(),
        "/api/v1/conversations/nope/messages".to_owned(),
    ] {
        let (status, _, answer) =
            json_of(client.get(server.url(&path)).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(answer["field"], "chat_id");
    }
    let (status, _, _) = json_of(
        client
            .get(server.url("/api/v1/conversations?limit=0"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        conversations_of(&server, &client).await.is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn metacharacters_and_emoji_are_stored_and_returned_byte_for_byte() {
    let server = start(Options::default()).await;
    let client = browser();
    let text =
        "'; DROP TABLE chats; -- \" \\ {\"$ne\": 1} EVAL redis.call('FLUSHALL') \u{7} \r\n 🦀👩‍👩‍👧 ﷽";
    let (status, body) = server.send(&client, json!({"message": text})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["metadata"]["question"], text);
    let chat_id = body["chat_id"].as_str().unwrap();
    let (_, _, messages) = json_of(
        client
            .get(server.url(&format!("/api/v1/conversations/{chat_id}/messages")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(messages["items"][0]["content"], text);
}

#[tokio::test]
async fn conversations_can_be_listed_renamed_exported_and_deleted() {
    let server = start(Options::default()).await;
    let client = browser();
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, body) = server
            .send(&client, json!({"message": format!("topic {i}")}))
            .await;
        ids.push(body["chat_id"].as_str().unwrap().to_owned());
    }
    let get = |path: String| client.get(server.url(&path)).send();
    let (_, _, page) = json_of(get("/api/v1/conversations?limit=2".into()).await.unwrap()).await;
    assert_eq!(page["conversations"].as_array().unwrap().len(), 2);
    assert_eq!(page["conversations"][0]["chat_id"], ids[2].as_str());
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, _, rest) = json_of(
        get(format!("/api/v1/conversations?limit=2&cursor={cursor}"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(rest["conversations"][0]["chat_id"], ids[0].as_str());
    let (_, _, offset) = json_of(
        get("/api/v1/conversations?limit=1&offset=1".into())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(offset["conversations"][0]["chat_id"], ids[1].as_str());

    let chat = &ids[0];
    let (status, _, renamed) = json_of(
        client
            .patch(server.url(&format!("/api/v1/conversations/{chat}")))
            .json(&json!({"title": "Renamed", "system_prompt": "Be brief.", "metadata": {"pinned": true}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["title"], "Renamed");
    assert_eq!(renamed["system_prompt"], "Be brief.");
    assert_eq!(renamed["metadata"]["pinned"], true);
    let (_, _, cleared) = json_of(
        client
            .patch(server.url(&format!("/api/v1/conversations/{chat}")))
            .json(&json!({"system_prompt": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(cleared["system_prompt"], Value::Null);
    assert_eq!(cleared["title"], "Renamed");

    let (_, _, newest) = json_of(
        get(format!(
            "/api/v1/conversations/{chat}/messages?order=desc&limit=1"
        ))
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(newest["items"][0]["role"], "assistant");
    assert_eq!(newest["items"][0]["seq"], 2);

    let markdown = get(format!(
        "/api/v1/conversations/{chat}/export?format=markdown"
    ))
    .await
    .unwrap();
    assert!(markdown.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/markdown"));
    let markdown = markdown.text().await.unwrap();
    assert!(markdown.starts_with("# Renamed"), "{markdown}");
    assert!(markdown.contains("topic 0"));
    let exported: Value = get(format!("/api/v1/conversations/{chat}/export"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(exported["messages"].as_array().unwrap().len(), 2);

    let (_, _, history) = json_of(
        get(format!("/api/v1/my-history?chat_id={chat}"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 2);
    let question = history["messages"][0]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, _, one) = json_of(
        get(format!(
            "/api/v1/my-history?chat_id={chat}&message_id={question}"
        ))
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(one["message"]["content"], "topic 0");

    let (status, _, edited) = json_of(
        client
            .patch(server.url(&format!("/api/v1/messages/{question}")))
            .json(&json!({"content": "topic zero"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(edited["content"], "topic zero");
    assert_eq!(edited["seq"], 1);
    let status = client
        .delete(server.url(&format!("/api/v1/messages/{question}")))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);

    let status = client
        .delete(server.url(&format!("/api/v1/conversations/{chat}")))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    let status = get(format!("/api/v1/conversations/{chat}"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Usage survives the delete: it is a ledger.
    let (_, _, usage) = json_of(get("/api/v1/usage".into()).await.unwrap()).await;
    assert_eq!(usage["calls"], 3, "{usage}");
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["conversations"], 2);
}

#[tokio::test]
async fn a_persona_is_made_and_a_conversation_starts_with_it() {
    let server = start(Options::default()).await;
    let client = browser();
    let (status, _, made) = json_of(
        client
            .post(server.url("/api/v1/personas"))
            .json(&json!({"description": "A patient chess coach"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    assert!(!made["persona"]["name"].as_str().unwrap().is_empty());
    let prompt = made["persona"]["system_prompt"].as_str().unwrap();
    let chat = made["chat_id"].as_str().unwrap();
    let (_, _, conversation) = json_of(
        client
            .get(server.url(&format!("/api/v1/conversations/{chat}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(conversation["system_prompt"], prompt);
    let (status, _) = server
        .send(
            &client,
            json!({"message": "Teach me an opening", "chat_id": chat}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, bad) = json_of(
        client
            .post(server.url("/api/v1/personas"))
            .json(&json!({"description": " "}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["field"], "description");
}

#[tokio::test]
async fn another_users_items_are_not_found_on_every_endpoint() {
    let server = start(Options::default()).await;
    let alice = browser();
    let bob = browser();
    let (_, sent) = server
        .send(&alice, json!({"message": "alice's secret"}))
        .await;
    let chat = sent["chat_id"].as_str().unwrap().to_owned();
    let message = sent["message_uid"].as_str().unwrap().to_owned();
    let url = |p: String| server.url(&p);
    let attempts = vec![
        bob.get(url(format!("/api/v1/conversations/{chat}"))),
        bob.patch(url(format!("/api/v1/conversations/{chat}")))
            .json(&json!({"title": "mine"})),
        bob.delete(url(format!("/api/v1/conversations/{chat}"))),
        bob.get(url(format!("/api/v1/conversations/{chat}/messages"))),
        bob.get(url(format!("/api/v1/conversations/{chat}/export"))),
        bob.patch(url(format!("/api/v1/messages/{message}")))
            .json(&json!({"content": "changed"})),
        bob.delete(url(format!("/api/v1/messages/{message}"))),
        bob.get(url(format!("/api/v1/my-history?chat_id={chat}"))),
        bob.get(url(format!("/api/v1/my-history?message_id={message}"))),
        bob.post(url("/api/v1/chats".into()))
            .json(&json!({"message": "hi", "chat_id": chat})),
        bob.post(url("/api/v1/chats/stream".into()))
            .json(&json!({"message": "hi", "chat_id": chat})),
    ];
    for attempt in attempts {
        let (status, _, body) = json_of(attempt.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    let (_, _, list) = json_of(
        bob.get(server.url("/api/v1/conversations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(list["conversations"].as_array().unwrap().is_empty());
    // Bob reusing Alice's message_uid gets his own exchange, learning nothing.
    let (status, own) = server
        .send(&bob, json!({"message": "bob's", "message_uid": message}))
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_ne!(own["chat_id"], chat.as_str());
    // Alice's conversation is as it was.
    let (_, _, messages) = json_of(
        alice
            .get(server.url(&format!("/api/v1/conversations/{chat}/messages")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(messages["items"][0]["content"], "alice's secret");
    assert_eq!(messages["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn api_keys_identify_users_and_bad_ones_are_401_with_a_challenge() {
    let keys = ApiKeys::parse("alice key-for-alice-0001\nbob key-for-bob-00000001\n").unwrap();
    let server = start(Options {
        auth: Authenticator::ApiKeys(keys),
        ..Options::default()
    })
    .await;
    let client = reqwest::Client::new();
    for auth in [None, Some("Bearer wrong-key-000000000"), Some("Basic abc")] {
        let mut request = client
            .post(server.url("/api/v1/chats"))
            .json(&json!({"message": "hi"}));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let (status, headers, body) = json_of(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert_eq!(body["error"], "Unauthorized");
    }
    let (status, _, sent) = json_of(
        client
            .post(server.url("/api/v1/chats"))
            .header("x-api-key", "key-for-alice-0001")
            .json(&json!({"message": "hi"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let chat: bedrock_chat_core::ChatId = sent["chat_id"].as_str().unwrap().parse().unwrap();
    let alice = UserId::new("alice").unwrap();
    assert!(server.store.get_conversation(&alice, chat).await.is_ok());
    let status = client
        .get(server.url(&format!("/api/v1/conversations/{chat}")))
        .bearer_auth("key-for-bob-00000001")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(server
        .store
        .list_conversations(&UserId::new("bob").unwrap(), ListOptions::first(5))
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn health_checks_and_metrics_answer() {
    let server = start(Options::default()).await;
    let client = browser();
    let (status, _, live) = json_of(client.get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(live["status"], "ok");
    let (status, _, ready) = json_of(
        client
            .get(server.url("/api/v1/health"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["checks"]["store"]["backend"], "memory");
    assert_eq!(ready["checks"]["rate_limiter"]["status"], "ok");
    server.send(&client, json!({"message": "count me"})).await;
    let metrics = server.metrics(&client).await;
    assert!(
        metrics.contains("bedrock_chat_http_requests_total{route=\"/api/v1/chats\",method=\"POST\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bedrock_chat_model_calls_total{operation=\"send\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    let (status, _, missing) = json_of(client.get(server.url("/nope")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"], "Not found");
}

#[tokio::test]
async fn the_openapi_document_and_offline_docs_are_served() {
    let server = start(Options::default()).await;
    let client = browser();
    let (status, _, doc) = json_of(
        client
            .get(server.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/chats",
        "/api/v1/chats/stream",
        "/chat",
        "/api/v1/conversations",
        "/api/v1/conversations/{chat_id}",
        "/api/v1/conversations/{chat_id}/messages",
        "/api/v1/conversations/{chat_id}/export",
        "/api/v1/messages/{message_id}",
        "/api/v1/my-history",
        "/api/v1/usage",
        "/api/v1/personas",
        "/health",
        "/api/v1/health",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} is undocumented");
    }
    let send = &doc["paths"]["/api/v1/chats"]["post"];
    for status in ["200", "400", "401", "404", "413", "429", "502", "503"] {
        assert!(
            send["responses"].get(status).is_some(),
            "POST /api/v1/chats {status}"
        );
    }
    let page = client.get(server.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // The UI's script is embedded, not fetched from a CDN.
    assert!(!html.contains("https://"), "{html}");
    let script = client
        .get(server.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_chat_page_is_served_with_a_strict_csp_and_revalidated_by_etag() {
    let server = start(Options::default()).await;
    let client = browser();
    let page = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // Images: the server's, and the object URLs of attachments the page holds; nothing else.
    assert!(csp.contains("img-src 'self' blob: data:;"), "{csp}");
    assert!(csp.contains("connect-src 'self';"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/assets/app.js"></script>"#));
    assert!(!html.contains("<script>"), "no inline script");

    // Every file the page loads is there, with its type; a match is a 304 with no body.
    for (path, content_type) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/attachments.js", "text/javascript; charset=utf-8"),
        ("/assets/citations.js", "text/javascript; charset=utf-8"),
        ("/assets/markdown.js", "text/javascript; charset=utf-8"),
        ("/assets/reasoning.js", "text/javascript; charset=utf-8"),
        ("/assets/sse.js", "text/javascript; charset=utf-8"),
        ("/assets/tools.js", "text/javascript; charset=utf-8"),
        (
            "/assets/vendor/marked.esm.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/assets/vendor/purify.es.mjs",
            "text/javascript; charset=utf-8",
        ),
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let first = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        assert_eq!(first.headers()["content-type"], content_type, "{path}");
        let etag = first.headers()["etag"].clone();
        assert!(!first.bytes().await.unwrap().is_empty(), "{path}");
        let again = client
            .get(server.url(path))
            .header("if-none-match", etag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(again.headers()["etag"], etag, "{path}");
        assert!(again.bytes().await.unwrap().is_empty(), "{path}");
        let stale = client
            .get(server.url(path))
            .header("if-none-match", "\"something-else\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::OK, "{path}");
    }
    for missing in [
        "/assets/nope.js",
        "/assets/../Cargo.toml",
        "/assets/vendor/VERSIONS",
    ] {
        let response = client.get(server.url(missing)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
    }
}
