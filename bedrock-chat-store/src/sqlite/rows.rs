//! Rows of the SQLite schema back as domain types.

use bedrock_chat_core::{
    ChatId, Conversation, DailyUsage, Message, MessageId, Role, StoreError, Usage, UserId,
};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::error::classify;
use super::BACKEND;
use crate::codec::{
    from_micros, malformed, metadata_from_json, parts_from_json, to_u64, usage_from_columns,
};

/// The columns [`conversation`] reads, in `SELECT` order.
pub(super) const CONVERSATION_COLUMNS: &str = "id, user_id, title, system_prompt, metadata, \
     message_count, created_at, updated_at";

/// The columns [`message`] reads, in `SELECT` order.
pub(super) const MESSAGE_COLUMNS: &str = "id, chat_id, seq, role, content, reply_to, model, \
     input_tokens, output_tokens, total_tokens, metadata, created_at, updated_at, parts, \
     cache_read_tokens, cache_write_tokens";

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column).map_err(classify)
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| malformed(BACKEND, format!("{what} {text:?} does not parse")))
}

/// A `conversations` row.
pub(super) fn conversation(row: &SqliteRow) -> Result<Conversation, StoreError> {
    let id: String = get(row, "id")?;
    let user_id: String = get(row, "user_id")?;
    let metadata: String = get(row, "metadata")?;
    Ok(Conversation {
        id: parse::<ChatId>(&id, "conversation id")?,
        user_id: parse::<UserId>(&user_id, "user id")?,
        title: get(row, "title")?,
        system_prompt: get(row, "system_prompt")?,
        metadata: metadata_from_json(BACKEND, &metadata)?,
        message_count: to_u64(BACKEND, get(row, "message_count")?, "message_count")?,
        created_at: from_micros(BACKEND, get(row, "created_at")?)?,
        updated_at: from_micros(BACKEND, get(row, "updated_at")?)?,
    })
}

/// A `messages` row.
pub(super) fn message(row: &SqliteRow) -> Result<Message, StoreError> {
    let id: String = get(row, "id")?;
    let chat_id: String = get(row, "chat_id")?;
    let role: String = get(row, "role")?;
    let reply_to: Option<String> = get(row, "reply_to")?;
    let metadata: String = get(row, "metadata")?;
    let parts: Option<String> = get(row, "parts")?;
    Ok(Message {
        id: parse::<MessageId>(&id, "message id")?,
        chat_id: parse::<ChatId>(&chat_id, "conversation id")?,
        seq: to_u64(BACKEND, get(row, "seq")?, "seq")?,
        role: Role::parse(&role).ok_or_else(|| malformed(BACKEND, format!("role {role:?}")))?,
        content: get(row, "content")?,
        parts: parts_from_json(BACKEND, parts.as_deref())?,
        reply_to: reply_to
            .map(|r| parse::<MessageId>(&r, "reply_to"))
            .transpose()?,
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
        metadata: metadata_from_json(BACKEND, &metadata)?,
        created_at: from_micros(BACKEND, get(row, "created_at")?)?,
        updated_at: from_micros(BACKEND, get(row, "updated_at")?)?,
    })
}

/// A `usage_ledger` row of one day.
pub(super) fn daily_usage(row: &SqliteRow) -> Result<DailyUsage, StoreError> {
    let day: String = get(row, "day")?;
    let count =
        |column: &str| -> Result<u64, StoreError> { to_u64(BACKEND, get(row, column)?, column) };
    Ok(DailyUsage {
        day: parse(&day, "usage day")?,
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
