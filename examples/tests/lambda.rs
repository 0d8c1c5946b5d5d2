//! The Lambda host: API Gateway events, written out as the service sends them in
//! `tests/fixtures/lambda/` (HTTP API payload v2, REST API payload v1), turned into
//! requests by `lambda_http` exactly as the function's runtime does
//! (`lambda_http::request::from_str`) and answered by the Lambda handler, the server's
//! own router behind [`lambda::handler`]. Memory backends and the offline model (or a
//! model that records its calls), configured through [`LambdaConfig`] as the function is.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::http::{HeaderMap, StatusCode};
use bedrock_chat_core::{
    ChatModel, ChatService, ModelError, ModelRequest, ModelResponse, ModelStream, OfflineChatModel,
    Quota,
};
use bedrock_chat_examples::config::LambdaConfig;
use bedrock_chat_examples::http::{self, AppState, Authenticator, Metrics, RouterSettings};
use bedrock_chat_examples::{app, lambda};
use bedrock_chat_ratelimit::InMemoryRateLimiter;
use bedrock_chat_store::InMemoryHistoryStore;
use clap::Parser;
use serde_json::{json, Value};
use tower::ServiceExt;

/// An event document from `tests/fixtures/lambda/`.
fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lambda")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// `event` as sent by a caller at `ip` who wrote its own `X-Forwarded-For: forged`
/// (API Gateway appends the address it saw after the caller's value).
fn from_ip(mut event: Value, ip: &str, forged: Option<&str>) -> Value {
    let forwarded = match forged {
        Some(forged) => format!("{forged}, {ip}"),
        None => ip.to_owned(),
    };
    if event["version"] == "2.0" {
        event["requestContext"]["http"]["sourceIp"] = json!(ip);
        event["headers"]["x-forwarded-for"] = json!(forwarded);
    } else {
        event["requestContext"]["identity"]["sourceIp"] = json!(ip);
        event["headers"]["X-Forwarded-For"] = json!(forwarded);
        event["multiValueHeaders"]["X-Forwarded-For"] = json!([forwarded]);
    }
    event
}

/// The handler the function runs, from the function's own configuration: `args` as the
/// `BEDROCK_CHAT_*` variables would give them.
async fn configured(args: &[&str]) -> lambda::Handler {
    let mut all = vec![
        "bedrock-chat-lambda",
        "--store",
        "memory",
        "--model",
        "offline",
    ];
    all.extend_from_slice(args);
    let config = LambdaConfig::try_parse_from(all).unwrap();
    let state = app::state(&config.backends, &config.http).await.unwrap();
    lambda::handler(http::router(state, &app::router_settings(&config.http)))
}

/// One event through the handler: status, headers, JSON body.
async fn invoke(handler: &lambda::Handler, event: &Value) -> (StatusCode, HeaderMap, Value) {
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = handler.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{} answered {}: {}",
            event["rawPath"]
                .as_str()
                .or(event["path"].as_str())
                .unwrap(),
            parts.status,
            String::from_utf8_lossy(&bytes)
        )
    });
    (parts.status, parts.headers, body)
}

#[tokio::test]
async fn an_http_api_send_answers_in_seed_000s_shape_with_rate_limit_headers() {
    let handler = configured(&["--rate-limit", "10/min"]).await;
    let (status, headers, body) = invoke(&handler, &fixture("apigw-v2-send.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["model"], "offline");
    assert!(body["response"].as_str().unwrap().contains("offline model"));
    assert_eq!(
        body["metadata"]["question"],
        "What are the top security vulnerabilities?"
    );
    for field in ["chat_id", "message_uid", "response_session_id"] {
        assert!(
            uuid::Uuid::parse_str(body[field].as_str().unwrap()).is_ok(),
            "{field}: {body}"
        );
    }
    assert_eq!(headers["x-ratelimit-limit"], "10");
    assert_eq!(headers["x-ratelimit-remaining"], "9");
    assert!(headers.contains_key("x-request-id"));
    assert!(headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("bedrock_chat_id="));
}

/// A model that answers as the offline one and keeps each call's system prompt.
#[derive(Default)]
struct RecordingModel {
    offline: OfflineChatModel,
    systems: Mutex<Vec<Option<String>>>,
}

#[async_trait]
impl ChatModel for RecordingModel {
    fn model_id(&self) -> &str {
        self.offline.model_id()
    }

    async fn converse(&self, request: ModelRequest) -> Result<ModelResponse, ModelError> {
        self.systems.lock().unwrap().push(request.system.clone());
        self.offline.converse(request).await
    }

    async fn converse_stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError> {
        self.systems.lock().unwrap().push(request.system.clone());
        self.offline.converse_stream(request).await
    }
}

#[tokio::test]
async fn seed_003s_chat_with_a_system_prompt_works_over_http_and_rest_apis() {
    let model = Arc::new(RecordingModel::default());
    let service = ChatService::builder(model.clone(), Arc::new(InMemoryHistoryStore::new()))
        .request_limiter(Arc::new(InMemoryRateLimiter::new(
            Quota::per_minute(10).unwrap(),
        )))
        .build();
    let state = AppState {
        service,
        auth: Arc::new(Authenticator::Anonymous {
            secure_cookies: true,
            trust_forwarded_for: false,
        }),
        metrics: Metrics::new(),
    };
    let handler = lambda::handler(http::router(state, &RouterSettings::default()));

    // HTTP API, the body base64-encoded; REST API on stage `prod`, its path `/chat`.
    for name in ["apigw-v2-chat.json", "apigw-v1-chat.json"] {
        let (status, headers, body) = invoke(&handler, &fixture(name)).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert!(body["response"].as_str().unwrap().contains("offline model"));
        assert_eq!(body["model"], "offline");
        assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
        assert!(headers.contains_key("x-ratelimit-remaining"), "{name}");
    }
    assert_eq!(
        *model.systems.lock().unwrap(),
        vec![Some("You are an MTA assistant.".to_owned()); 2],
        "each call carried the request's system prompt"
    );
}

#[tokio::test]
async fn over_the_limit_an_event_gets_a_429_with_headers_and_body() {
    let handler = configured(&["--rate-limit", "2/min"]).await;
    let event = fixture("apigw-v2-send.json");
    for remaining in ["1", "0"] {
        let (status, headers, body) = invoke(&handler, &event).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers["x-ratelimit-remaining"], remaining);
    }
    let (status, headers, body) = invoke(&handler, &fixture("apigw-v2-chat.json")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "Rate limit exceeded");
    assert_eq!(
        body["message"],
        "Too many requests. Maximum 2 requests per 60 seconds."
    );
    let retry_after = body["retry_after"].as_u64().unwrap();
    assert!((1..=60).contains(&retry_after), "{body}");
    assert_eq!(headers["retry-after"], retry_after.to_string().as_str());
    assert_eq!(headers["x-ratelimit-limit"], "2");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    assert_eq!(headers["content-type"], "application/json");
}

#[tokio::test]
async fn a_malformed_body_is_a_400_naming_the_body() {
    let handler = configured(&[]).await;
    let (status, _, body) = invoke(&handler, &fixture("apigw-v2-bad-request.json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "body", "{body}");
    assert!(body["error"].is_string() && body["message"].is_string());

    let mut blank = fixture("apigw-v2-send.json");
    blank["body"] = json!(r#"{"message": "  "}"#);
    let (status, _, body) = invoke(&handler, &blank).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "message", "{body}");
}

#[tokio::test]
async fn the_per_ip_limit_counts_the_request_contexts_source_ip_not_x_forwarded_for() {
    // One request a minute per IP, and X-Forwarded-For trusted by the settings: the
    // request context still wins, as API Gateway's own record of the peer.
    let handler = configured(&["--rate-limit", "1/min", "--trust-forwarded-for"]).await;
    for name in ["apigw-v2-send.json", "apigw-v1-chat.json"] {
        let event = fixture(name);
        let (first, second) = if name.contains("v2") {
            ("203.0.113.1", "203.0.113.2")
        } else {
            ("198.51.100.1", "198.51.100.2")
        };
        let (status, _, body) = invoke(&handler, &from_ip(event.clone(), first, None)).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        // The same caller, claiming to be another client: still limited.
        let (status, _, body) =
            invoke(&handler, &from_ip(event.clone(), first, Some("192.0.2.77"))).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{name}: {body}");
        // Another caller, claiming to be the first: its own allowance.
        let (status, _, body) =
            invoke(&handler, &from_ip(event.clone(), second, Some(first))).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }
}

#[test]
fn client_ip_reads_each_request_context() {
    let ip = |event: Value| {
        lambda::client_ip(&lambda_http::request::from_str(&event.to_string()).unwrap())
    };
    let v2 = from_ip(
        fixture("apigw-v2-send.json"),
        "2001:db8::7",
        Some("192.0.2.1"),
    );
    assert_eq!(ip(v2), Some("2001:db8::7".parse::<IpAddr>().unwrap()));
    let v1 = from_ip(
        fixture("apigw-v1-chat.json"),
        "198.51.100.9",
        Some("192.0.2.1"),
    );
    assert_eq!(ip(v1), Some("198.51.100.9".parse::<IpAddr>().unwrap()));
    // An ALB appends the peer it saw as the last hop.
    let alb = json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/chat/6d0ecf831eec9f09"}},
        "httpMethod": "GET",
        "path": "/health",
        "queryStringParameters": {},
        "headers": {"host": "chat.example", "x-forwarded-for": "192.0.2.1, 203.0.113.50"},
        "body": "",
        "isBase64Encoded": false
    });
    assert_eq!(ip(alb), Some("203.0.113.50".parse::<IpAddr>().unwrap()));
    // No request context (not an event): no address.
    let plain = lambda_http::http::Request::builder()
        .uri("/health")
        .header("x-forwarded-for", "192.0.2.1")
        .body(())
        .unwrap();
    assert_eq!(lambda::client_ip(&plain), None);
}

#[tokio::test]
async fn health_answers_through_the_handler() {
    let handler = configured(&[]).await;
    let (status, _, body) = invoke(&handler, &fixture("apigw-v2-health.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_streamed_send_answers_its_server_sent_events_through_the_handler() {
    // Buffered (API Gateway) the events arrive together at the end; streamed (a Function
    // URL, scripts/lint-deploy runs it under the emulator) as they are generated.
    let handler = configured(&[]).await;
    let request =
        lambda_http::request::from_str(&fixture("apigw-v2-stream.json").to_string()).unwrap();
    let response = handler.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"start"), "{text}");
    assert_eq!(events.last(), Some(&"done"), "{text}");
    assert!(events.contains(&"delta"), "{text}");
}
