//! `POST /api/v1/personas`: a persona made by the model (structured output) from a
//! description, and a conversation started with it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bedrock_chat_core::{ChatId, Persona, Usage};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::identity::Caller;
use super::json::ApiJson;
use super::limits::with_decision;
use super::AppState;

/// What to make a persona from.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonaRequest {
    /// Who the persona is, in the user's words (not blank).
    #[schema(min_length = 1, pattern = "\\S")]
    pub description: String,
    /// Start a conversation with it (default `true`).
    #[serde(default = "yes")]
    pub start_conversation: bool,
}

fn yes() -> bool {
    true
}

/// The persona made.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PersonaResponse {
    /// The persona.
    #[schema(value_type = super::openapi::PersonaDoc)]
    pub persona: Persona,
    /// The conversation started with it, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub chat_id: Option<ChatId>,
    /// The model that made it.
    pub model: String,
    /// Tokens used.
    #[schema(value_type = super::openapi::UsageDoc)]
    pub usage: Usage,
}

/// `POST /api/v1/personas`.
#[utoipa::path(
    post,
    path = "/api/v1/personas",
    tag = "personas",
    summary = "Make a persona by structured output and start a conversation with it",
    request_body = PersonaRequest,
    responses(
        (status = 200, description = "The persona", body = PersonaResponse),
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
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PersonaRequest>,
) -> Result<Response, ApiError> {
    let made = state
        .service
        .create_persona(caller.send_request(body.description))
        .await;
    state.metrics.observe("persona", &made, |m| Some(m.usage));
    let made = made.map_err(|e| rename_field(e.into(), "description"))?;
    let chat_id = if body.start_conversation {
        Some(
            state
                .service
                .start_conversation(&caller.user, &made.persona)
                .await?
                .id,
        )
    } else {
        None
    };
    let decision = made.rate_limit;
    Ok(with_decision(
        Json(PersonaResponse {
            persona: made.persona,
            chat_id,
            model: made.model,
            usage: made.usage,
        })
        .into_response(),
        decision,
    ))
}

/// The service calls the description its `message`; the API calls it `description`.
fn rename_field(mut error: ApiError, to: &str) -> ApiError {
    error.rename_field("message", to);
    error
}
