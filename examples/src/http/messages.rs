//! One message: edit, delete; and seed 000's `my-history`.

use axum::extract::{Path, State};
use axum::Json;
use bedrock_chat_core::{Cursor, ListOptions, MessageId, MessageUpdate};
use serde::{Deserialize, Serialize};

use super::conversations::{page_limit, parse_chat_id, ConversationList, Deleted};
use super::error::ApiError;
use super::identity::Caller;
use super::json::{ApiJson, ApiQuery};
use super::views::{ConversationView, MessageView, PageView};
use super::AppState;

pub(crate) fn parse_message_id(raw: &str, field: &str) -> Result<MessageId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid(field, format!("`{raw}` is not a UUID")))
}

/// `PATCH /api/v1/messages/{message_id}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagePatch {
    /// The new text (not blank).
    #[schema(min_length = 1, pattern = "\\S")]
    pub content: String,
}

/// `PATCH /api/v1/messages/{message_id}`: edits a message's text; its place stays.
#[utoipa::path(
    patch,
    path = "/api/v1/messages/{message_id}",
    tag = "messages",
    summary = "Edit a message's text",
    request_body = MessagePatch,
    params(("message_id" = uuid::Uuid, Path, description = "The message")),
    responses(
        (status = 200, description = "The message as changed", body = MessageView),
        (status = 400, description = "Bad input: the field at fault is named", body = super::error::ErrorBody),
        (status = 401, description = "Missing or invalid credentials (with WWW-Authenticate)", body = super::error::ErrorBody),
        (status = 404, description = "No such item for this caller", body = super::error::ErrorBody),
        (status = 413, description = "Body over the size limit", body = super::error::ErrorBody),
        (status = 415, description = "Body not declared as JSON", body = super::error::ErrorBody),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
        (status = 503, description = "A backend is unavailable (with Retry-After)", body = super::error::ErrorBody),
        (status = 504, description = "Timed out", body = super::error::ErrorBody)
    )
)]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(message_id): Path<String>,
    ApiJson(body): ApiJson<MessagePatch>,
) -> Result<Json<MessageView>, ApiError> {
    let id = parse_message_id(&message_id, "message_id")?;
    if body.content.trim().is_empty() {
        return Err(ApiError::invalid("content", "content must not be empty"));
    }
    let max = state.service.policy().max_message_chars;
    if body.content.chars().nth(max).is_some() {
        return Err(ApiError::invalid(
            "content",
            format!("content must be at most {max} characters"),
        ));
    }
    let update = MessageUpdate::new().with_content(body.content);
    let message = state
        .service
        .store()
        .update_message(&caller.user, id, update)
        .await?;
    Ok(Json(message.into()))
}

/// `DELETE /api/v1/messages/{message_id}`.
#[utoipa::path(
    delete,
    path = "/api/v1/messages/{message_id}",
    tag = "messages",
    summary = "Delete one message",
    params(("message_id" = uuid::Uuid, Path, description = "The message")),
    responses(
        (status = 200, description = "Deleted", body = super::conversations::Deleted),
        (status = 400, description = "Bad input: the field at fault is named", body = super::error::ErrorBody),
        (status = 401, description = "Missing or invalid credentials (with WWW-Authenticate)", body = super::error::ErrorBody),
        (status = 404, description = "No such item for this caller", body = super::error::ErrorBody),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
        (status = 503, description = "A backend is unavailable (with Retry-After)", body = super::error::ErrorBody),
        (status = 504, description = "Timed out", body = super::error::ErrorBody)
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(message_id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let id = parse_message_id(&message_id, "message_id")?;
    // Through the service: the attachments in the blob store go too.
    state.service.delete_message(&caller.user, id).await?;
    Ok(Json(Deleted {
        status: "deleted",
        id: id.to_string(),
    }))
}

/// `GET /api/v1/my-history` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// One conversation's messages.
    pub chat_id: Option<String>,
    /// One message (with `chat_id`, it must be in that conversation).
    pub message_id: Option<String>,
    /// Page size for a conversation's messages (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

/// `GET /api/v1/my-history` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum History {
    /// No parameters: the caller's conversations.
    Conversations(ConversationList),
    /// `chat_id`: that conversation and a page of its messages, oldest first.
    Conversation {
        /// The conversation.
        conversation: ConversationView,
        /// Its messages.
        messages: Vec<MessageView>,
        /// Pass it as `cursor` for the next page.
        #[serde(skip_serializing_if = "Option::is_none")]
        next_cursor: Option<String>,
    },
    /// `message_id`: that message.
    Message {
        /// The message.
        message: MessageView,
    },
}

/// `GET /api/v1/my-history?chat_id=&message_id=` (seed 000): the caller's history — all
/// conversations, one conversation's messages, or one message.
#[utoipa::path(
    get,
    path = "/api/v1/my-history",
    tag = "messages",
    summary = "Seed 000: the caller's history",
    params(HistoryQuery),
    responses(
        (status = 200, description = "Conversations, one conversation with its messages, or one message", body = History),
        (status = 400, description = "Bad input: the field at fault is named", body = super::error::ErrorBody),
        (status = 401, description = "Missing or invalid credentials (with WWW-Authenticate)", body = super::error::ErrorBody),
        (status = 404, description = "No such item for this caller", body = super::error::ErrorBody),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
        (status = 503, description = "A backend is unavailable (with Retry-After)", body = super::error::ErrorBody),
        (status = 504, description = "Timed out", body = super::error::ErrorBody)
    )
)]
pub async fn my_history(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<History>, ApiError> {
    let store = state.service.store();
    let limit = page_limit(query.limit)?;
    let chat_id = query.chat_id.as_deref().map(parse_chat_id).transpose()?;
    if let Some(raw) = query.message_id.as_deref() {
        let id = parse_message_id(raw, "message_id")?;
        let message = store.get_message(&caller.user, id).await?;
        if chat_id.is_some_and(|chat_id| chat_id != message.chat_id) {
            return Err(ApiError::not_found("Message"));
        }
        return Ok(Json(History::Message {
            message: message.into(),
        }));
    }
    let options = match query.cursor {
        Some(cursor) => ListOptions::after(limit, Cursor::new(cursor)),
        None => ListOptions::first(limit),
    };
    match chat_id {
        Some(chat_id) => {
            let conversation = store.get_conversation(&caller.user, chat_id).await?;
            let page = store.list_messages(&caller.user, chat_id, options).await?;
            let page = PageView::<MessageView>::of(page);
            Ok(Json(History::Conversation {
                conversation: conversation.into(),
                messages: page.items,
                next_cursor: page.next_cursor,
            }))
        }
        None => {
            let page = store.list_conversations(&caller.user, options).await?;
            let page = PageView::<ConversationView>::of(page);
            Ok(Json(History::Conversations(ConversationList {
                conversations: page.items,
                next_cursor: page.next_cursor,
                limit,
                offset: None,
            })))
        }
    }
}
