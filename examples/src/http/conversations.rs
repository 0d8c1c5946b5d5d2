//! Conversations: list, get, change, delete, their messages, export.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bedrock_chat_core::{
    ChatId, ConversationUpdate, Cursor, ExportFormat, HistoryStoreExt, ListOptions, MessageOrder,
    Metadata,
};
use futures::StreamExt;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::ApiError;
use super::identity::Caller;
use super::json::{ApiJson, ApiQuery};
use super::views::{ConversationView, MessageView, PageView};
use super::AppState;

/// The page size when a listing names none.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest page a listing serves.
pub const MAX_LIMIT: u32 = 100;
/// The longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// Paging of a listing: `limit` with `offset` (seed 000) or with `cursor` (keyset).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Items to skip (at most 10,000); not with `cursor`.
    #[param(maximum = 10000)]
    pub offset: Option<u32>,
    /// Where the previous page ended (its `next_cursor`).
    pub cursor: Option<String>,
}

pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n),
        _ => Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// The conversations page answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationList {
    /// The conversations, newest activity first.
    pub conversations: Vec<ConversationView>,
    /// Pass it as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// The page size.
    pub limit: u32,
    /// The offset served, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
}

/// `GET /api/v1/conversations`: the caller's conversations, newest activity first.
#[utoipa::path(
    get,
    path = "/api/v1/conversations",
    tag = "conversations",
    summary = "List the caller's conversations, newest activity first",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of conversations", body = ConversationList),
        (status = 400, description = "Bad input: the field at fault is named", body = super::error::ErrorBody),
        (status = 401, description = "Missing or invalid credentials (with WWW-Authenticate)", body = super::error::ErrorBody),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
        (status = 503, description = "A backend is unavailable (with Retry-After)", body = super::error::ErrorBody),
        (status = 504, description = "Timed out", body = super::error::ErrorBody)
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let limit = page_limit(query.limit)?;
    let store = state.service.store();
    let page = match (query.offset, query.cursor) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "offset",
                "give either offset or cursor, not both",
            ))
        }
        (Some(offset), None) => {
            store
                .list_conversations_at_offset(&caller.user, offset, limit)
                .await?
        }
        (None, cursor) => {
            let options = match cursor {
                Some(cursor) => ListOptions::after(limit, Cursor::new(cursor)),
                None => ListOptions::first(limit),
            };
            store.list_conversations(&caller.user, options).await?
        }
    };
    let page = PageView::<ConversationView>::of(page);
    Ok(Json(ConversationList {
        conversations: page.items,
        next_cursor: page.next_cursor,
        limit,
        offset: query.offset,
    }))
}

/// `GET /api/v1/conversations/{chat_id}`.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{chat_id}",
    tag = "conversations",
    summary = "Get one conversation",
    params(("chat_id" = uuid::Uuid, Path, description = "The conversation")),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 400, description = "Bad input: the field at fault is named", body = super::error::ErrorBody),
        (status = 401, description = "Missing or invalid credentials (with WWW-Authenticate)", body = super::error::ErrorBody),
        (status = 404, description = "No such item for this caller", body = super::error::ErrorBody),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
        (status = 503, description = "A backend is unavailable (with Retry-After)", body = super::error::ErrorBody),
        (status = 504, description = "Timed out", body = super::error::ErrorBody)
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(chat_id): Path<String>,
) -> Result<Json<ConversationView>, ApiError> {
    let chat_id = parse_chat_id(&chat_id)?;
    let conversation = state
        .service
        .store()
        .get_conversation(&caller.user, chat_id)
        .await?;
    Ok(Json(conversation.into()))
}

/// A path segment as a conversation id; a malformed one is a 400.
pub(crate) fn parse_chat_id(raw: &str) -> Result<ChatId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid("chat_id", format!("`{raw}` is not a UUID")))
}

/// `PATCH /api/v1/conversations/{chat_id}` body: each field present is changed;
/// `"system_prompt": null` removes the prompt.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationPatch {
    /// A new title (not blank, at most 200 characters).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub title: Option<String>,
    /// A new system prompt, or `null` to remove it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub system_prompt: Option<Option<String>>,
    /// New metadata (a JSON object), replacing the old.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PATCH /api/v1/conversations/{chat_id}`.
#[utoipa::path(
    patch,
    path = "/api/v1/conversations/{chat_id}",
    tag = "conversations",
    summary = "Rename a conversation or change its system prompt or metadata",
    request_body = ConversationPatch,
    params(("chat_id" = uuid::Uuid, Path, description = "The conversation")),
    responses(
        (status = 200, description = "The conversation as changed", body = ConversationView),
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
    Path(chat_id): Path<String>,
    ApiJson(body): ApiJson<ConversationPatch>,
) -> Result<Json<ConversationView>, ApiError> {
    let chat_id = parse_chat_id(&chat_id)?;
    if body.title.is_none() && body.system_prompt.is_none() && body.metadata.is_none() {
        return Err(ApiError::invalid(
            "body",
            "give at least one of title, system_prompt, metadata",
        ));
    }
    if let Some(title) = &body.title {
        if title.trim().is_empty() {
            return Err(ApiError::invalid("title", "title must not be empty"));
        }
        if title.chars().nth(MAX_TITLE_CHARS).is_some() {
            return Err(ApiError::invalid(
                "title",
                format!("title must be at most {MAX_TITLE_CHARS} characters"),
            ));
        }
    }
    if let Some(Some(prompt)) = &body.system_prompt {
        let max = state.service.policy().max_system_prompt_chars;
        if prompt.chars().nth(max).is_some() {
            return Err(ApiError::invalid(
                "system_prompt",
                format!("system_prompt must be at most {max} characters"),
            ));
        }
    }
    // The fields are public: a PATCH body's "absent / null / value" maps onto them as is.
    let mut update = ConversationUpdate::new();
    update.title = body.title;
    update.system_prompt = body.system_prompt;
    update.metadata = body.metadata;
    let conversation = state
        .service
        .store()
        .update_conversation(&caller.user, chat_id, update)
        .await?;
    Ok(Json(conversation.into()))
}

/// What a delete answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    /// `"deleted"`.
    pub status: &'static str,
    /// The id of what was deleted.
    pub id: String,
}

/// `DELETE /api/v1/conversations/{chat_id}`: the conversation and all its messages.
#[utoipa::path(
    delete,
    path = "/api/v1/conversations/{chat_id}",
    tag = "conversations",
    summary = "Delete a conversation and its messages",
    params(("chat_id" = uuid::Uuid, Path, description = "The conversation")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
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
    Path(chat_id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let chat_id = parse_chat_id(&chat_id)?;
    // Through the service: the attachments in the blob store go too.
    state
        .service
        .delete_conversation(&caller.user, chat_id)
        .await?;
    Ok(Json(Deleted {
        status: "deleted",
        id: chat_id.to_string(),
    }))
}

/// Paging of a conversation's messages.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
    /// `asc` (oldest first, the default) or `desc` (newest first: load the latest page,
    /// then page back).
    #[serde(default)]
    #[param(inline)]
    pub order: Order,
}

/// A listing order.
#[derive(Debug, Default, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

/// `GET /api/v1/conversations/{chat_id}/messages`.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{chat_id}/messages",
    tag = "conversations",
    summary = "Page through a conversation's messages",
    params(("chat_id" = uuid::Uuid, Path, description = "The conversation"), MessagesQuery),
    responses(
        (status = 200, description = "A page of messages", body = super::openapi::MessagePageDoc),
        (status = 400, description = "Bad input: the field at fault is named", body = super::error::ErrorBody),
        (status = 401, description = "Missing or invalid credentials (with WWW-Authenticate)", body = super::error::ErrorBody),
        (status = 404, description = "No such item for this caller", body = super::error::ErrorBody),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
        (status = 503, description = "A backend is unavailable (with Retry-After)", body = super::error::ErrorBody),
        (status = 504, description = "Timed out", body = super::error::ErrorBody)
    )
)]
pub async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(chat_id): Path<String>,
    ApiQuery(query): ApiQuery<MessagesQuery>,
) -> Result<Json<PageView<MessageView>>, ApiError> {
    let chat_id = parse_chat_id(&chat_id)?;
    let limit = page_limit(query.limit)?;
    let options = match query.cursor {
        Some(cursor) => ListOptions::after(limit, Cursor::new(cursor)),
        None => ListOptions::first(limit),
    };
    let options = match query.order {
        Order::Asc => options,
        Order::Desc => options.with_order(MessageOrder::NewestFirst),
    };
    let page = state
        .service
        .store()
        .list_messages(&caller.user, chat_id, options)
        .await?;
    Ok(Json(PageView::of(page)))
}

/// Export format choice.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `json` (default) or `markdown`.
    #[param(pattern = "^(json|markdown|md)$")]
    pub format: Option<String>,
}

/// `GET /api/v1/conversations/{chat_id}/export?format=json|markdown`: the whole
/// conversation, streamed as it is read from the store, as a download.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{chat_id}/export",
    tag = "conversations",
    summary = "Export a whole conversation as JSON or Markdown",
    params(("chat_id" = uuid::Uuid, Path, description = "The conversation"), ExportQuery),
    responses(
        (status = 200, description = "The export: JSON {conversation, messages} or a Markdown transcript", content((super::openapi::ExportDoc = "application/json"), (String = "text/markdown"))),
        (status = 400, description = "Bad input: the field at fault is named", body = super::error::ErrorBody),
        (status = 401, description = "Missing or invalid credentials (with WWW-Authenticate)", body = super::error::ErrorBody),
        (status = 404, description = "No such item for this caller", body = super::error::ErrorBody),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
        (status = 503, description = "A backend is unavailable (with Retry-After)", body = super::error::ErrorBody),
        (status = 504, description = "Timed out", body = super::error::ErrorBody)
    )
)]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(chat_id): Path<String>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let chat_id = parse_chat_id(&chat_id)?;
    let format: ExportFormat =
        query.format.as_deref().unwrap_or("json").parse().map_err(
            |e: bedrock_chat_core::InvalidInput| ApiError::invalid("format", e.to_string()),
        )?;
    let service = state.service.clone();
    let user = caller.user.clone();
    // The stream borrows the store and the user; a task owns both and forwards pieces.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(4);
    // Fail before the first byte when the conversation is not the caller's.
    service.store().get_conversation(&user, chat_id).await?;
    tokio::spawn(async move {
        let pieces = match crate::export::export_conversation(
            service.store().as_ref(),
            &user,
            chat_id,
            format,
        )
        .await
        {
            Ok(pieces) => pieces,
            Err(error) => {
                let _ = tx.send(Err(std::io::Error::other(error))).await;
                return;
            }
        };
        let mut pieces = pieces;
        while let Some(piece) = pieces.next().await {
            let piece = piece.map_err(std::io::Error::other);
            let failed = piece.is_err();
            if tx.send(piece).await.is_err() || failed {
                return;
            }
        }
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"conversation-{chat_id}.{}\"",
        format.extension()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
