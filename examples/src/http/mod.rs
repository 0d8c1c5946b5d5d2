//! The HTTP API as an axum [`Router`]: the server, the Lambda function and the tests all
//! serve this one router.
//!
//! Layers, outermost first: request id (set and echoed as `x-request-id`), tracing with
//! the request id on every line, panic catching, CORS, metrics, the body limit, the
//! request timeout; API routes also pass the auth layer ([`identity`]) that names the
//! caller and adds rate-limit headers.

pub mod attachments;
pub mod chats;
pub mod conversations;
pub mod error;
pub mod health;
pub mod identity;
pub mod json;
pub mod jwt;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod personas;
pub mod request_id;
pub mod usage;
pub mod views;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;
use bedrock_chat_core::{ChatService, Decision};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use self::error::ApiError;
pub use self::identity::{ApiKeys, Authenticator, Caller, ClientIp};
pub use self::metrics::Metrics;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The chat service: model, store, limiters.
    pub service: ChatService,
    /// How callers are identified.
    pub auth: Arc<Authenticator>,
    /// The metrics.
    pub metrics: Metrics,
}

impl AppState {
    /// Where `rate_key` stands with the request limiter, spending nothing; `None` when
    /// there is no limiter or it cannot answer (an answer is not refused for want of its
    /// headers).
    pub async fn peek_limit(&self, rate_key: &str) -> Option<Decision> {
        let limiter = self.service.request_limiter()?;
        limiter.check(rate_key, 0).await.ok()
    }
}

/// The default largest body of a send: Bedrock's largest set of attachments is more,
/// but 32 MiB of base64 holds several images and documents at their limits.
pub const DEFAULT_MAX_ATTACHMENT_BODY_BYTES: usize = 32 * 1024 * 1024;

/// HTTP settings of the router.
#[derive(Clone, Debug)]
pub struct RouterSettings {
    /// Origins allowed to call from a browser.
    pub cors_origins: Vec<String>,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The largest body of a send (`POST /api/v1/chats`, `/api/v1/chats/stream`), which
    /// may carry attachments in base64, in bytes.
    pub max_attachment_body_bytes: usize,
    /// How long a request may take before it is answered 504 (streams: until their
    /// headers).
    pub request_timeout: Duration,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            max_body_bytes: 1024 * 1024,
            max_attachment_body_bytes: DEFAULT_MAX_ATTACHMENT_BODY_BYTES,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// The whole API.
pub fn router(state: AppState, settings: &RouterSettings) -> Router {
    let api = Router::new()
        // Sends carry attachments: their own, larger body limit (the inner limit wins).
        .route(
            "/api/v1/chats",
            post(chats::send).layer(DefaultBodyLimit::max(settings.max_attachment_body_bytes)),
        )
        .route(
            "/api/v1/chats/stream",
            post(chats::send_stream)
                .layer(DefaultBodyLimit::max(settings.max_attachment_body_bytes)),
        )
        .route("/chat", post(chats::stateless))
        .route("/api/v1/conversations", get(conversations::list))
        .route(
            "/api/v1/conversations/{chat_id}",
            get(conversations::get)
                .patch(conversations::patch)
                .delete(conversations::delete),
        )
        .route(
            "/api/v1/conversations/{chat_id}/messages",
            get(conversations::messages),
        )
        .route(
            "/api/v1/conversations/{chat_id}/export",
            get(conversations::export),
        )
        .route(
            "/api/v1/messages/{message_id}",
            patch(messages::patch).delete(messages::delete),
        )
        .route(
            "/api/v1/messages/{message_id}/parts/{index}",
            get(attachments::download),
        )
        .route("/api/v1/my-history", get(messages::my_history))
        .route("/api/v1/usage", get(usage::usage))
        .route("/api/v1/personas", post(personas::create))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            identity::identify,
        ));

    let timeout = settings.request_timeout;
    let request_id_header = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/", get(web::index))
        .route("/assets/{*path}", get(web::asset))
        .route("/health", get(health::live))
        .route("/api/v1/health", get(health::ready))
        .route("/metrics", get(metrics::render))
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi::document()))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // One layer of the whole stack, outermost first: axum boxes each `Router::layer`
        // around every route and clones each box per request, so one stack costs one
        // box where eight layers cost eight.
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(
                    request_id_header.clone(),
                    request_id::MakeRequestIds,
                ))
                .layer(PropagateRequestIdLayer::new(request_id_header))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &Request| {
                        let id = request
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        tracing::info_span!(
                            "request",
                            request_id = %id,
                            method = %request.method(),
                            uri = %request.uri().path(),
                        )
                    }),
                )
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal error",
                        "the server failed while answering",
                    )
                    .into_response()
                }))
                .layer(cors(&settings.cors_origins))
                .layer(middleware::from_fn_with_state(
                    (state.metrics.clone(), timeout),
                    tracked,
                ))
                .layer(DefaultBodyLimit::max(settings.max_body_bytes)),
        )
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            axum::http::header::CONTENT_TYPE,
            axum::http::header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-window"),
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
            HeaderName::from_static("retry-after"),
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(Duration::from_secs(600))
}

/// Every request's metrics and timeout, in one middleware: axum clones the services
/// under each `from_fn` and boxes its future for every request.
async fn tracked(
    State((metrics, timeout)): State<(metrics::Metrics, Duration)>,
    request: Request,
    next: Next,
) -> Response {
    metrics::track(&metrics, request, |request| {
        with_timeout(timeout, request, next)
    })
    .await
}

async fn with_timeout(timeout: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Request timeout",
            format!("the request took longer than {timeout:?}"),
        )
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "this endpoint does not answer that method",
    )
}
