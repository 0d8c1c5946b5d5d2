//! Rows of the PostgreSQL schema back as domain types.

use bedrock_chat_core::parts::Part;
use bedrock_chat_core::{
    ChatId, Conversation, DailyUsage, Message, MessageId, Metadata, Role, StoreError, Timestamp,
    Usage, UserId,
};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;
use uuid::Uuid;

use super::error::classify;
use super::BACKEND;
use crate::codec::{malformed, to_u64, usage_from_columns};

/// The columns [`conversation`] reads, in `SELECT` order.
pub(super) const CONVERSATION_COLUMNS: &str = "id, user_id, title, system_prompt, metadata, \
     message_count, created_at, updated_at";

/// The columns [`message`] reads, qualified by the alias `m`.
pub(super) const MESSAGE_COLUMNS_M: &str = "m.id, m.chat_id, m.seq, m.role, m.content, \
     m.reply_to, m.model, m.input_tokens, m.output_tokens, m.total_tokens, m.metadata, \
     m.created_at, m.updated_at, m.parts, m.cache_read_tokens, m.cache_write_tokens";

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(classify)
}

/// A `conversations` row.
pub(super) fn conversation(row: &PgRow) -> Result<Conversation, StoreError> {
    let user_id: String = get(row, "user_id")?;
    let Json(metadata): Json<Metadata> = get(row, "metadata")?;
    Ok(Conversation {
        id: ChatId::from_uuid(get::<Uuid>(row, "id")?),
        user_id: UserId::new(user_id).map_err(|e| malformed(BACKEND, format!("user id: {e}")))?,
        title: get(row, "title")?,
        system_prompt: get(row, "system_prompt")?,
        metadata,
        message_count: to_u64(BACKEND, get(row, "message_count")?, "message_count")?,
        created_at: get::<Timestamp>(row, "created_at")?,
        updated_at: get::<Timestamp>(row, "updated_at")?,
    })
}

/// A `messages` row (or a row of the append function, which has the same columns).
pub(super) fn message(row: &PgRow) -> Result<Message, StoreError> {
    let role: String = get(row, "role")?;
    let reply_to: Option<Uuid> = get(row, "reply_to")?;
    let Json(metadata): Json<Metadata> = get(row, "metadata")?;
    // NULL for a plain-text message, or one stored before parts were kept.
    let parts: Option<Json<Vec<Part>>> = get(row, "parts")?;
    Ok(Message {
        id: MessageId::from_uuid(get::<Uuid>(row, "id")?),
        chat_id: ChatId::from_uuid(get::<Uuid>(row, "chat_id")?),
        seq: to_u64(BACKEND, get(row, "seq")?, "seq")?,
        role: Role::parse(&role).ok_or_else(|| malformed(BACKEND, format!("role {role:?}")))?,
        content: get(row, "content")?,
        parts: parts.map(|Json(parts)| parts).unwrap_or_default(),
        reply_to: reply_to.map(MessageId::from_uuid),
        model: get(row, "model")?,
        usage: usage_from_columns(
            BACKEND,
            (
                get(row, "input_tokens")?,
                get(row, "output_tokens")?,
                get(row, "total_tokens")?,
                get(row, "cache_read_tokens")?,
                get(row, "cache_write_tokens")?,
            ),
        )?,
        metadata,
        created_at: get::<Timestamp>(row, "created_at")?,
        updated_at: get::<Timestamp>(row, "updated_at")?,
    })
}

/// A `usage_days` row.
pub(super) fn daily_usage(row: &PgRow) -> Result<DailyUsage, StoreError> {
    let count =
        |column: &str| -> Result<u64, StoreError> { to_u64(BACKEND, get(row, column)?, column) };
    Ok(DailyUsage {
        day: get(row, "day")?,
        usage: Usage {
            input_tokens: count("input_tokens")?,
            output_tokens: count("output_tokens")?,
            total_tokens: count("total_tokens")?,
            cache_read_tokens: count("cache_read_tokens")?,
            cache_write_tokens: count("cache_write_tokens")?,
        },
        calls: count("calls")?,
    })
}
