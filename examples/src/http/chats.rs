//! Sending messages: `POST /api/v1/chats` (seed 000's shape), its streamed form
//! `POST /api/v1/chats/stream` (Server-Sent Events), and seed 003's stateless `POST /chat`.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bedrock_chat_core::{
    ChatError, ChatId, ChatReply, InferenceConfig, MessageId, SendRequest, StopReason, StreamEvent,
    Usage,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::attachments::AttachmentRequest;
use super::error::{ApiError, ErrorBody};
use super::identity::Caller;
use super::json::ApiJson;
use super::limits::with_decision;
use super::views::CitationView;
use super::AppState;
use crate::config::check_reasoning;

/// A message to send.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatRequest {
    /// The message text (not blank; at most `--max-message-chars`).
    #[schema(min_length = 1, pattern = "\\S")]
    pub message: String,
    /// The conversation to continue; absent starts a new one.
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub chat_id: Option<ChatId>,
    /// The message's id: a retry with the same id returns the stored exchange.
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub message_uid: Option<MessageId>,
    /// A system prompt for this send (and, for a new conversation, the ones after).
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Images and documents sent with the message, in order (Bedrock's limits: 20
    /// images of at most 3.75 MB and 8,000 px a side, 5 documents of at most 4.5 MB;
    /// over them is a 413, a format not taken or bytes that are not that format a 415).
    #[serde(default)]
    pub attachments: Vec<AttachmentRequest>,
    /// Let the model reason before it answers, with up to this many tokens (Claude's
    /// extended thinking; over the server's `--reasoning-budget`). At least 1024, less
    /// than the server's `--max-tokens`, and refused when the server sets
    /// `--temperature` or `--top-p`. The reasoning streams as `reasoning` events and
    /// comes back as the answer's `reasoning`.
    #[serde(default)]
    #[schema(minimum = 1024)]
    pub reasoning_budget: Option<u32>,
}

impl ChatRequest {
    /// The send this request asks for, by `caller`, under the server's sampling settings
    /// `inference` (the reasoning budget is checked against them).
    fn into_send(
        self,
        caller: &Caller,
        inference: &InferenceConfig,
    ) -> Result<SendRequest, ApiError> {
        let mut send = caller.send_request(self.message);
        if let Some(budget) = self.reasoning_budget {
            let over = InferenceConfig::new().with_reasoning_budget(budget);
            check_reasoning(&inference.overridden_by(&over)).map_err(|reason| {
                ApiError::invalid("reasoning_budget", format!("reasoning_budget: {reason}"))
            })?;
            send = send.with_inference(over);
        }
        for (index, attachment) in self.attachments.into_iter().enumerate() {
            send = send.with_attachment(attachment.into_part(index)?);
        }
        if let Some(chat_id) = self.chat_id {
            send = send.in_chat(chat_id);
        }
        if let Some(uid) = self.message_uid {
            send = send.with_message_uid(uid);
        }
        if let Some(prompt) = self.system_prompt {
            send = send.with_system_prompt(prompt);
        }
        Ok(send)
    }
}

/// Seed 000's `metadata` object.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatMetadata {
    /// The question as asked.
    pub question: String,
    /// Whether the model answered it (always `true` in a success).
    pub bedrock_processed: bool,
    /// When the answer was stored (RFC 3339).
    pub timestamp: String,
}

/// The answer to a send (seed 000's shape, plus `model`, `usage`, `stop_reason`,
/// `replayed`, and `reasoning` when the model reasoned).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatResponse {
    /// The reply text.
    pub response: String,
    /// The model's reasoning before the reply (asked for with `reasoning_budget` or the
    /// server's `--reasoning-budget`); omitted when it did not reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Which words of the reply rest on which passages of the conversation's documents
    /// (with the server's `--citations`, on models that cite); omitted when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citations: Option<Vec<CitationView>>,
    /// The conversation.
    #[schema(value_type = uuid::Uuid)]
    pub chat_id: ChatId,
    /// The user message's id.
    #[schema(value_type = uuid::Uuid)]
    pub message_uid: MessageId,
    /// The reply's id.
    #[schema(value_type = uuid::Uuid)]
    pub response_session_id: MessageId,
    /// The model that answered.
    pub model: String,
    /// Tokens used.
    #[schema(value_type = super::openapi::UsageDoc)]
    pub usage: Usage,
    /// Why the model stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub stop_reason: Option<StopReason>,
    /// `true` when this exchange was stored by an earlier send with the same id.
    pub replayed: bool,
    /// Seed 000's metadata.
    pub metadata: ChatMetadata,
    /// `"success"`.
    pub status: &'static str,
}

impl From<ChatReply> for ChatResponse {
    fn from(reply: ChatReply) -> Self {
        Self {
            metadata: ChatMetadata {
                question: reply.question.content.clone(),
                bedrock_processed: true,
                timestamp: reply.answer.created_at.to_rfc3339(),
            },
            reasoning: reply.reasoning(),
            citations: CitationView::of_parts(&reply.answer.parts),
            response: reply.answer.content,
            chat_id: reply.chat_id,
            message_uid: reply.message_uid,
            response_session_id: reply.response_session_id,
            model: reply.model,
            usage: reply.usage,
            stop_reason: reply.stop_reason,
            replayed: reply.replayed,
            status: "success",
        }
    }
}

/// `POST /api/v1/chats`: sends a message and answers with the whole reply.
#[utoipa::path(
    post,
    path = "/api/v1/chats",
    tag = "chat",
    summary = "Send a message and get the whole reply",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The stored exchange (seed 000 shape)", body = ChatResponse),
        (status = 400, description = "Bad input: the field at fault is named", body = super::error::ErrorBody),
        (status = 401, description = "Missing or invalid credentials (with WWW-Authenticate)", body = super::error::ErrorBody),
        (status = 404, description = "No such item for this caller", body = super::error::ErrorBody),
        (status = 409, description = "The message_uid names a message whose reply was deleted", body = super::error::ErrorBody),
        (status = 413, description = "Body over --max-attachment-body-bytes, or attachments over Bedrock's limits (the attachment is named)", body = super::error::ErrorBody),
        (status = 415, description = "Body not declared as JSON, or an attachment whose format is not taken or whose bytes are not that format (the attachment is named)", body = super::error::ErrorBody),
        (status = 429, description = "Over the rate limit or token budget (with Retry-After)", body = super::error::ErrorBody),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
        (status = 502, description = "The model failed", body = super::error::ErrorBody),
        (status = 503, description = "A backend is unavailable (with Retry-After)", body = super::error::ErrorBody),
        (status = 504, description = "Timed out", body = super::error::ErrorBody)
    )
)]
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let send = body.into_send(&caller, &state.service.policy().inference)?;
    let reply = state.service.send(send).await;
    state
        .metrics
        .observe("send", &reply, |r| (!r.replayed).then_some(r.usage));
    let reply = reply?;
    let decision = reply.rate_limit;
    Ok(with_decision(
        Json(ChatResponse::from(reply)).into_response(),
        decision,
    ))
}

/// The `start` event of a stream: the ids, before any text.
#[derive(Debug, Serialize)]
struct StartEvent {
    chat_id: ChatId,
    message_uid: MessageId,
    response_session_id: MessageId,
    model: String,
}

/// A `delta` event: the next piece of the reply; a `reasoning` event: the next piece of
/// the model's reasoning, before the reply.
#[derive(Debug, Serialize)]
struct DeltaEvent<'a> {
    text: &'a str,
}

/// `POST /api/v1/chats/stream`: sends a message and streams the reply as Server-Sent
/// Events: `start` (the ids), `reasoning`s (`{"text"}`, the model's reasoning, when it
/// reasons), `delta`s (`{"text"}`), `citation`s when the model cites documents (each
/// after the words it supports: `{start, end, cited_text, title, quote, location}`), then
/// `done` (the whole send answer,
/// as `POST /api/v1/chats` gives it) or `error` (`{"error", "message", "retry_after"?}`;
/// nothing stored, a retry with the same `message_uid` may be made). Errors found before
/// the model starts are plain HTTP errors. A client that goes away does not stop the
/// reply from being stored.
#[utoipa::path(
    post,
    path = "/api/v1/chats/stream",
    tag = "chat",
    summary = "Send a message and stream the reply as Server-Sent Events",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "Events: start {chat_id, message_uid, response_session_id, model}, reasoning {text}... when the model reasons, delta {text}..., citation {start, end, cited_text, title, quote, location} after the words it supports when the model cites documents, with tools tool_call {id, name, input} and tool_result {id, name, output, is_error} for each call between rounds, then done (the ChatResponse) or error (an ErrorBody)", content_type = "text/event-stream", body = super::openapi::SseEventDoc),
        (status = 400, description = "Bad input: the field at fault is named", body = super::error::ErrorBody),
        (status = 401, description = "Missing or invalid credentials (with WWW-Authenticate)", body = super::error::ErrorBody),
        (status = 404, description = "No such item for this caller", body = super::error::ErrorBody),
        (status = 409, description = "The message_uid names a message whose reply was deleted", body = super::error::ErrorBody),
        (status = 413, description = "Body over --max-attachment-body-bytes, or attachments over Bedrock's limits (the attachment is named)", body = super::error::ErrorBody),
        (status = 415, description = "Body not declared as JSON, or an attachment whose format is not taken or whose bytes are not that format (the attachment is named)", body = super::error::ErrorBody),
        (status = 429, description = "Over the rate limit or token budget (with Retry-After)", body = super::error::ErrorBody),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
        (status = 502, description = "The model failed", body = super::error::ErrorBody),
        (status = 503, description = "A backend is unavailable (with Retry-After)", body = super::error::ErrorBody),
        (status = 504, description = "Timed out", body = super::error::ErrorBody)
    )
)]
pub async fn send_stream(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let send = body.into_send(&caller, &state.service.policy().inference)?;
    let stream = state.service.send_stream(send).await;
    state.metrics.observe("stream", &stream, |_| None);
    let stream = stream?;
    let mut decision = None;
    let metrics = state.metrics.clone();
    let guard = metrics.stream_started();
    let events = stream.map(move |event| {
        // Held by the stream: the gauge of streams in flight drops when it ends.
        let _ = &guard;
        match &event {
            StreamEvent::Completed(reply) if !reply.replayed => metrics.model_call(
                "stream",
                "ok",
                (reply.usage.input_tokens, reply.usage.output_tokens),
            ),
            StreamEvent::Failed(ChatError::Model(_)) => {
                metrics.model_call("stream", "error", (0, 0))
            }
            _ => {}
        }
        Ok::<_, Infallible>(sse_event(event))
    });
    // The limiter's decision travels in the `start` event; headers are sent before it,
    // so read it from the stream's first event.
    let mut events = Box::pin(events);
    let first = events.next().await;
    if let Some(Ok(event)) = &first {
        decision = event.1;
    }
    let events = futures::stream::iter(first)
        .chain(events)
        .map(|item| item.map(|(event, _)| event));
    Ok(with_decision(
        Sse::new(events)
            .keep_alive(KeepAlive::default())
            .into_response(),
        decision,
    ))
}

fn sse_event(event: StreamEvent) -> (Event, Option<bedrock_chat_core::Decision>) {
    match event {
        StreamEvent::Started {
            chat_id,
            message_uid,
            response_session_id,
            model,
            rate_limit,
            ..
        } => (
            json_event(
                "start",
                &StartEvent {
                    chat_id,
                    message_uid,
                    response_session_id,
                    model,
                },
            ),
            rate_limit,
        ),
        StreamEvent::Reasoning(text) => {
            (json_event("reasoning", &DeltaEvent { text: &text }), None)
        }
        StreamEvent::Delta(text) => (json_event("delta", &DeltaEvent { text: &text }), None),
        StreamEvent::Citation {
            citation,
            cited_text,
            ..
        } => (
            json_event(
                "citation",
                &CitationView::with_cited_text(cited_text, &citation),
            ),
            None,
        ),
        StreamEvent::ToolCall(call) => (json_event("tool_call", &call), None),
        StreamEvent::ToolResult {
            tool_use_id,
            name,
            output,
            is_error,
            ..
        } => (
            json_event(
                "tool_result",
                &ToolResultEvent {
                    id: &tool_use_id,
                    name: &name,
                    output: &output,
                    is_error,
                },
            ),
            None,
        ),
        StreamEvent::Completed(reply) => (json_event("done", &ChatResponse::from(*reply)), None),
        StreamEvent::Failed(error) => (error_event(error), None),
        // A kind of event added later: nothing a client of today understands.
        _ => (Event::default().comment("unknown event"), None),
    }
}

/// A `tool_result` event: the call's id, the tool, what it returned (or why it failed).
#[derive(Serialize)]
struct ToolResultEvent<'a> {
    id: &'a str,
    name: &'a str,
    output: &'a serde_json::Value,
    is_error: bool,
}

fn json_event<T: Serialize>(name: &str, data: &T) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name))
}

fn error_event(error: ChatError) -> Event {
    let answer = ApiError::from(error);
    let body: &ErrorBody = answer.body();
    json_event("error", body)
}

/// Seed 003's `POST /chat` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StatelessChatRequest {
    /// The message text (not blank; at most `--max-message-chars`).
    #[schema(min_length = 1, pattern = "\\S")]
    pub message: String,
    /// A system prompt for this call.
    #[serde(default)]
    pub system_prompt: Option<String>,
}

/// Seed 003's `POST /chat` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatelessChatResponse {
    /// The reply text.
    pub response: String,
    /// The model that answered.
    pub model: String,
    /// Tokens used.
    #[schema(value_type = super::openapi::UsageDoc)]
    pub usage: Usage,
}

/// `POST /chat`: seed 003's public, stateless chat: limited and budgeted like a send,
/// nothing stored.
#[utoipa::path(
    post,
    path = "/chat",
    tag = "chat",
    summary = "Seed 003: a stateless chat, nothing stored",
    request_body = StatelessChatRequest,
    responses(
        (status = 200, description = "The reply", body = StatelessChatResponse),
        (status = 400, description = "Bad input: the field at fault is named", body = super::error::ErrorBody),
        (status = 401, description = "Missing or invalid credentials (with WWW-Authenticate)", body = super::error::ErrorBody),
        (status = 413, description = "Body over the size limit", body = super::error::ErrorBody),
        (status = 415, description = "Body not declared as JSON", body = super::error::ErrorBody),
        (status = 429, description = "Over the rate limit or token budget (with Retry-After)", body = super::error::ErrorBody),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
        (status = 502, description = "The model failed", body = super::error::ErrorBody),
        (status = 503, description = "A backend is unavailable (with Retry-After)", body = super::error::ErrorBody),
        (status = 504, description = "Timed out", body = super::error::ErrorBody)
    )
)]
pub async fn stateless(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<StatelessChatRequest>,
) -> Result<Response, ApiError> {
    let mut send = caller.send_request(body.message);
    if let Some(prompt) = body.system_prompt {
        send = send.with_system_prompt(prompt);
    }
    let reply = state.service.send_stateless(send).await;
    state
        .metrics
        .observe("stateless", &reply, |r| Some(r.usage));
    let reply = reply?;
    let decision = reply.rate_limit;
    Ok(with_decision(
        Json(StatelessChatResponse {
            response: reply.text,
            model: reply.model,
            usage: reply.usage,
        })
        .into_response(),
        decision,
    ))
}
