//! The OpenAPI document of the API (`GET /openapi.json`) and the interactive docs
//! (`GET /docs`: Swagger UI, its assets embedded in the binary, nothing from a CDN).
//!
//! The document is generated from the handlers' `#[utoipa::path]` annotations and the
//! request and response types, so it cannot drift from the code.

use utoipa::{Modify, OpenApi, ToSchema};

use super::views::MessageView;

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "bedrock-chat",
        description = "Chat backend on Amazon Bedrock: conversations with history, images and documents attached to messages, rate limits and token budgets, streamed replies. Every API answer carries X-RateLimit-Limit / -Remaining / -Window and the IETF RateLimit / RateLimit-Policy fields."
    ),
    paths(
        super::chats::send,
        super::chats::send_stream,
        super::chats::stateless,
        super::conversations::list,
        super::conversations::get,
        super::conversations::patch,
        super::conversations::delete,
        super::conversations::messages,
        super::conversations::export,
        super::messages::patch,
        super::messages::delete,
        super::attachments::download,
        super::messages::my_history,
        super::usage::usage,
        super::personas::create,
        super::health::live,
        super::health::ready,
        super::metrics::render,
    ),
    components(schemas(super::error::ErrorBody, UsageDoc, DailyUsageDoc, PersonaDoc, RoleDoc, MessagePageDoc, ExportDoc, SseEventDoc)),
    modifiers(&Security),
    tags(
        (name = "chat", description = "Sending messages"),
        (name = "conversations", description = "Conversations and their messages"),
        (name = "messages", description = "One message, and seed 000's history"),
        (name = "usage", description = "Token usage"),
        (name = "personas", description = "Personas by structured output"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer scheme (API keys and JWTs both travel as `Authorization: Bearer`).
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Token usage of a model call.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the API sends `bedrock_chat_core::Usage`
pub struct UsageDoc {
    /// Tokens read.
    input_tokens: u64,
    /// Tokens written.
    output_tokens: u64,
    /// All tokens.
    total_tokens: u64,
    /// Input tokens read from the prompt cache (billed at a tenth); omitted when none.
    cache_read_tokens: Option<u64>,
    /// Input tokens written to the prompt cache (billed at 1.25x); omitted when none.
    cache_write_tokens: Option<u64>,
}

/// Usage on one UTC day.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the API sends `bedrock_chat_core::DailyUsage`
pub struct DailyUsageDoc {
    /// The day.
    #[schema(value_type = String, format = Date)]
    day: chrono::NaiveDate,
    /// Tokens used that day.
    usage: UsageDoc,
    /// Model calls that day.
    calls: u64,
}

/// A persona.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the API sends `bedrock_chat_core::Persona`
pub struct PersonaDoc {
    /// A short name.
    name: String,
    /// Who it is.
    description: String,
    /// The system prompt that makes the model speak as it.
    system_prompt: String,
}

/// Who wrote a message.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // a schema only: the API sends `bedrock_chat_core::Role`
pub enum RoleDoc {
    /// The person.
    User,
    /// The model.
    Assistant,
}

/// A page of messages.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the API sends `PageView<MessageView>`
pub struct MessagePageDoc {
    /// The messages.
    items: Vec<MessageView>,
    /// Pass it as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// A conversation exported as JSON.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the export is written piece by piece
pub struct ExportDoc {
    /// The conversation as stored.
    #[schema(value_type = Object)]
    conversation: (),
    /// Its messages, oldest first, as stored.
    #[schema(value_type = Vec<Object>)]
    messages: (),
}

/// One Server-Sent Event of a streamed send; `data` is JSON: `start` has the ids,
/// `reasoning` `{"text"}` (the model's reasoning, before the reply, when it reasons),
/// `delta` `{"text"}`, `done` the whole send answer, `error` an error body.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the events are written by the SSE handler
pub struct SseEventDoc {
    /// The kind of event.
    event: SseEventKind,
    /// The event's JSON.
    data: String,
}

/// The kinds of event a streamed send sends.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // a schema only
pub enum SseEventKind {
    /// The ids, before any text.
    Start,
    /// The next piece of the model's reasoning (only when it reasons), before any text.
    Reasoning,
    /// The next piece of text.
    Delta,
    /// The reply, stored.
    Done,
    /// The reply failed; nothing stored.
    Error,
}

/// The document as JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
