//! [`HistoryStore`] for [`PostgresHistoryStore`]: every operation is one statement.

use async_trait::async_trait;
use bedrock_chat_core::store::{
    check_usage_days, AppendRequest, AppendTarget, Appended, Cursor, ListOptions, MessageRange,
    Page,
};
use bedrock_chat_core::{
    ChatId, Conversation, ConversationUpdate, DailyUsage, HistoryStore, Message, MessageId,
    MessageUpdate, NewConversation, Resource, StoreError, Timestamp, Usage, UsageTotals, UserId,
};
use chrono::NaiveDate;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;
use uuid::Uuid;

use super::error::classify;
use super::rows::{self, CONVERSATION_COLUMNS, MESSAGE_COLUMNS_M};
use super::{input, PostgresHistoryStore, BACKEND};
use crate::codec::{to_i64, to_u64, usage_to_columns};

/// Calls the append function installed by the migrations (see the module docs).
const APPEND: &str = "SELECT already_stored, id, chat_id, seq, role, content, reply_to, model, \
     input_tokens, output_tokens, total_tokens, metadata, created_at, updated_at, parts, \
     cache_read_tokens, cache_write_tokens \
     FROM bedrock_chat_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
     $16, $17, $18, $19)";

impl PostgresHistoryStore {
    /// Messages of the user's conversation from a query joined on its owner; an empty
    /// result is checked for ownership so that another user's conversation is NotFound,
    /// not empty. The check costs a second round trip only when there is nothing to show.
    async fn messages_of(
        &self,
        user: &UserId,
        chat_id: ChatId,
        rows: Vec<PgRow>,
    ) -> Result<Vec<Message>, StoreError> {
        if rows.is_empty() {
            let owned = sqlx::query("SELECT 1 FROM conversations WHERE id = $1 AND user_id = $2")
                .bind(chat_id.as_uuid())
                .bind(user.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(classify)?;
            if owned.is_none() {
                return Err(StoreError::not_found(Resource::Conversation));
            }
        }
        rows.iter().map(rows::message).collect()
    }
}

/// That conversation `$1` belongs to user `$2`, as a condition the planner evaluates once
/// (an InitPlan on the conversations key) rather than `m.user_id = $2`: with that, and
/// without table statistics (a new deployment, a fast-growing conversation), PostgreSQL
/// can combine `messages_pkey (user_id, id)` with `messages_chat_seq` in a bitmap, read the
/// whole conversation and sort it. With only `chat_id` on `messages`, reading a page is
/// always a range scan of `messages_chat_seq`. A conversation's messages all carry its
/// owner (`bedrock_chat_append` copies it), so the result is the same.
const OWNED_BY_2: &str =
    "EXISTS (SELECT 1 FROM conversations c WHERE c.id = $1 AND c.user_id = $2)";

fn page_limit(options: &ListOptions) -> i64 {
    i64::from(options.limit) + 1
}

#[async_trait]
impl HistoryStore for PostgresHistoryStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn create_conversation(
        &self,
        user: &UserId,
        conversation: NewConversation,
    ) -> Result<Conversation, StoreError> {
        input::conversation(&conversation)?;
        let now = self.clock.now();
        let sql = format!(
            "INSERT INTO conversations (id, user_id, title, system_prompt, metadata, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             RETURNING {CONVERSATION_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(conversation.id.as_uuid())
            .bind(user.as_str())
            .bind(&conversation.title)
            .bind(&conversation.system_prompt)
            .bind(Json(&conversation.metadata))
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        rows::conversation(&row)
    }

    async fn get_conversation(
        &self,
        user: &UserId,
        id: ChatId,
    ) -> Result<Conversation, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND user_id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_uuid())
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?
            .ok_or(StoreError::not_found(Resource::Conversation))?;
        rows::conversation(&row)
    }

    async fn list_conversations(
        &self,
        user: &UserId,
        options: ListOptions,
    ) -> Result<Page<Conversation>, StoreError> {
        let after = options.conversations_before()?;
        // Two statements rather than an `OR $2 IS NULL`, which would hide the row
        // comparison from the index.
        let rows = match after {
            Some((updated_at, id)) => {
                let sql = format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = $1 \
                     AND (updated_at, id) < ($2, $3) ORDER BY updated_at DESC, id DESC LIMIT $4"
                );
                sqlx::query(&sql)
                    .bind(user.as_str())
                    .bind(updated_at)
                    .bind(id.as_uuid())
                    .bind(page_limit(&options))
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                let sql = format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = $1 \
                     ORDER BY updated_at DESC, id DESC LIMIT $2"
                );
                sqlx::query(&sql)
                    .bind(user.as_str())
                    .bind(page_limit(&options))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(classify)?;
        let items = rows
            .iter()
            .map(rows::conversation)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetched(
            items,
            options.limit,
            Cursor::after_conversation,
        ))
    }

    async fn update_conversation(
        &self,
        user: &UserId,
        id: ChatId,
        update: ConversationUpdate,
    ) -> Result<Conversation, StoreError> {
        if let Some(title) = &update.title {
            input::text("title", title)?;
        }
        if let Some(Some(prompt)) = &update.system_prompt {
            input::text("system_prompt", prompt)?;
        }
        if let Some(metadata) = &update.metadata {
            input::metadata("metadata", metadata)?;
        }
        let now = self.clock.now();
        let (set_prompt, prompt) = match update.system_prompt {
            Some(prompt) => (true, prompt),
            None => (false, None),
        };
        let sql = format!(
            "UPDATE conversations SET title = COALESCE($3, title), \
             system_prompt = CASE WHEN $4 THEN $5 ELSE system_prompt END, \
             metadata = COALESCE($6, metadata), updated_at = $7 \
             WHERE id = $1 AND user_id = $2 RETURNING {CONVERSATION_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_uuid())
            .bind(user.as_str())
            .bind(update.title)
            .bind(set_prompt)
            .bind(prompt)
            .bind(update.metadata.as_ref().map(Json))
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?
            .ok_or(StoreError::not_found(Resource::Conversation))?;
        rows::conversation(&row)
    }

    async fn delete_conversation(&self, user: &UserId, id: ChatId) -> Result<(), StoreError> {
        // The messages go with it: ON DELETE CASCADE.
        let done = sqlx::query("DELETE FROM conversations WHERE id = $1 AND user_id = $2")
            .bind(id.as_uuid())
            .bind(user.as_str())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found(Resource::Conversation));
        }
        Ok(())
    }

    async fn append(&self, user: &UserId, request: AppendRequest) -> Result<Appended, StoreError> {
        request.validate()?;
        if let AppendTarget::CreateIfMissing(new) = &request.target {
            input::conversation(new)?;
        }
        let count = request.messages.len();
        let mut ids = Vec::with_capacity(count);
        let mut roles = Vec::with_capacity(count);
        let mut contents = Vec::with_capacity(count);
        let mut reply_to = Vec::with_capacity(count);
        let mut models = Vec::with_capacity(count);
        let mut input_tokens = Vec::with_capacity(count);
        let mut output_tokens = Vec::with_capacity(count);
        let mut total_tokens = Vec::with_capacity(count);
        let mut metadata = Vec::with_capacity(count);
        let mut parts = Vec::with_capacity(count);
        let mut cache_read = Vec::with_capacity(count);
        let mut cache_write = Vec::with_capacity(count);
        for m in &request.messages {
            input::message(m)?;
            let (i, o, t, r, w) = usage_to_columns(m.usage)?;
            ids.push(*m.id.as_uuid());
            roles.push(m.role.as_str());
            contents.push(m.content.as_str());
            reply_to.push(m.reply_to.map(|r| *r.as_uuid()));
            models.push(m.model.as_deref());
            input_tokens.push(i);
            output_tokens.push(o);
            total_tokens.push(t);
            metadata.push(Json(&m.metadata));
            // NULL, not `[]`, for a plain-text message.
            parts.push((!m.parts.is_empty()).then_some(Json(&m.parts)));
            cache_read.push(r);
            cache_write.push(w);
        }
        let new = match &request.target {
            AppendTarget::CreateIfMissing(new) => Some(new),
            AppendTarget::Existing(_) => None,
        };
        let now = self.clock.now();
        let rows = sqlx::query(APPEND)
            .bind(user.as_str())
            .bind(request.chat_id().as_uuid())
            .bind(new.is_some())
            .bind(new.map(|n| n.title.as_str()))
            .bind(new.and_then(|n| n.system_prompt.as_deref()))
            .bind(new.map(|n| Json(&n.metadata)))
            .bind(now)
            .bind(ids)
            .bind(roles)
            .bind(contents)
            .bind(reply_to)
            .bind(models)
            .bind(input_tokens)
            .bind(output_tokens)
            .bind(total_tokens)
            .bind(metadata)
            .bind(parts)
            .bind(cache_read)
            .bind(cache_write)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        let Some(first) = rows.first() else {
            return Err(StoreError::not_found(Resource::Conversation));
        };
        let already_stored: bool = first.try_get("already_stored").map_err(classify)?;
        let messages = rows
            .iter()
            .map(rows::message)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Appended {
            messages,
            already_stored,
        })
    }

    async fn recent_messages(
        &self,
        user: &UserId,
        chat_id: ChatId,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS_M} FROM messages m \
             WHERE m.chat_id = $1 AND {OWNED_BY_2} ORDER BY m.seq DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(chat_id.as_uuid())
            .bind(user.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        let mut messages = self.messages_of(user, chat_id, rows).await?;
        messages.reverse();
        Ok(messages)
    }

    async fn list_messages(
        &self,
        user: &UserId,
        chat_id: ChatId,
        options: ListOptions,
    ) -> Result<Page<Message>, StoreError> {
        let (newest_first, seq) = match options.message_range()? {
            MessageRange::After(after) => (false, after),
            MessageRange::Before(before) => (true, before.unwrap_or(u64::MAX)),
        };
        // A cursor past what bigint can hold is past every message.
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let order = if newest_first {
            "m.seq < $3 ORDER BY m.seq DESC"
        } else {
            "m.seq > $3 ORDER BY m.seq"
        };
        // The (chat_id, seq) index serves both directions as a range scan.
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS_M} FROM messages m \
             WHERE m.chat_id = $1 AND {OWNED_BY_2} AND {order} LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(chat_id.as_uuid())
            .bind(user.as_str())
            .bind(seq)
            .bind(page_limit(&options))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        let items = self.messages_of(user, chat_id, rows).await?;
        Ok(Page::from_overfetched(items, options.limit, |m| {
            if newest_first {
                Cursor::before_seq(m.seq)
            } else {
                Cursor::after_seq(m.seq)
            }
        }))
    }

    async fn get_message(&self, user: &UserId, id: MessageId) -> Result<Message, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS_M} FROM messages m WHERE m.id = $1 AND m.user_id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_uuid())
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?
            .ok_or(StoreError::not_found(Resource::Message))?;
        rows::message(&row)
    }

    async fn update_message(
        &self,
        user: &UserId,
        id: MessageId,
        update: MessageUpdate,
    ) -> Result<Message, StoreError> {
        if let Some(content) = &update.content {
            input::text("content", content)?;
        }
        if let Some(metadata) = &update.metadata {
            input::metadata("metadata", metadata)?;
        }
        let now = self.clock.now();
        // One statement: the message and its conversation's updated_at change together.
        // New text on a message with parts replaces its text parts (plain messages, whose
        // parts are NULL, stay plain).
        let sql = format!(
            "WITH edited AS ( \
               UPDATE messages m SET content = COALESCE($3, m.content), \
                 parts = CASE WHEN $3 IS NULL OR m.parts IS NULL THEN m.parts \
                   ELSE bedrock_chat_replace_text(m.parts, $3) END, \
                 metadata = COALESCE($4, m.metadata), updated_at = $5 \
               WHERE m.user_id = $2 AND m.id = $1 \
               RETURNING {MESSAGE_COLUMNS_M} \
             ), touched AS ( \
               UPDATE conversations SET updated_at = $5 WHERE id = (SELECT chat_id FROM edited) \
             ) \
             SELECT * FROM edited"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_uuid())
            .bind(user.as_str())
            .bind(update.content)
            .bind(update.metadata.as_ref().map(Json))
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?
            .ok_or(StoreError::not_found(Resource::Message))?;
        rows::message(&row)
    }

    async fn delete_message(&self, user: &UserId, id: MessageId) -> Result<(), StoreError> {
        let now = self.clock.now();
        let row: Option<(Uuid,)> = sqlx::query_as(
            "WITH d AS ( \
               DELETE FROM messages m WHERE m.user_id = $2 AND m.id = $1 \
               RETURNING m.chat_id \
             ) \
             UPDATE conversations SET message_count = message_count - 1, updated_at = $3 \
             WHERE id = (SELECT chat_id FROM d) RETURNING id",
        )
        .bind(id.as_uuid())
        .bind(user.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        match row {
            Some(_) => Ok(()),
            None => Err(StoreError::not_found(Resource::Message)),
        }
    }

    async fn usage(&self, user: &UserId) -> Result<UsageTotals, StoreError> {
        let row = sqlx::query(
            "SELECT \
               (SELECT count(*) FROM conversations WHERE user_id = $1) AS conversations, \
               (SELECT COALESCE(sum(message_count), 0)::bigint FROM conversations \
                 WHERE user_id = $1) AS messages, \
               COALESCE(t.input_tokens, 0) AS input_tokens, \
               COALESCE(t.output_tokens, 0) AS output_tokens, \
               COALESCE(t.total_tokens, 0) AS total_tokens, \
               COALESCE(t.cache_read_tokens, 0) AS cache_read_tokens, \
               COALESCE(t.cache_write_tokens, 0) AS cache_write_tokens, \
               COALESCE(t.calls, 0) AS calls \
             FROM (SELECT 1) AS one LEFT JOIN usage_totals t ON t.user_id = $1",
        )
        .bind(user.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        let get = |column: &str| -> Result<u64, StoreError> {
            let value: i64 = row.try_get(column).map_err(classify)?;
            to_u64(BACKEND, value, column)
        };
        Ok(UsageTotals {
            conversations: get("conversations")?,
            messages: get("messages")?,
            usage: Usage {
                input_tokens: get("input_tokens")?,
                output_tokens: get("output_tokens")?,
                total_tokens: get("total_tokens")?,
                cache_read_tokens: get("cache_read_tokens")?,
                cache_write_tokens: get("cache_write_tokens")?,
            },
            calls: get("calls")?,
        })
    }

    async fn record_usage(
        &self,
        user: &UserId,
        at: Timestamp,
        usage: Usage,
    ) -> Result<(), StoreError> {
        let input = to_i64(usage.input_tokens, "input_tokens")?;
        let output = to_i64(usage.output_tokens, "output_tokens")?;
        let total = to_i64(usage.total_tokens, "total_tokens")?;
        let cache_read = to_i64(usage.cache_read_tokens, "cache_read_tokens")?;
        let cache_write = to_i64(usage.cache_write_tokens, "cache_write_tokens")?;
        // One statement, so one round trip and one transaction: the day's row and the
        // all-time row change together or not at all.
        sqlx::query(
            "WITH day AS ( \
               INSERT INTO usage_days AS d \
                 (user_id, day, input_tokens, output_tokens, total_tokens, cache_read_tokens, \
                  cache_write_tokens, calls) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, 1) \
               ON CONFLICT (user_id, day) DO UPDATE SET \
                 input_tokens = d.input_tokens + EXCLUDED.input_tokens, \
                 output_tokens = d.output_tokens + EXCLUDED.output_tokens, \
                 total_tokens = d.total_tokens + EXCLUDED.total_tokens, \
                 cache_read_tokens = d.cache_read_tokens + EXCLUDED.cache_read_tokens, \
                 cache_write_tokens = d.cache_write_tokens + EXCLUDED.cache_write_tokens, \
                 calls = d.calls + 1 \
             ) \
             INSERT INTO usage_totals AS t \
               (user_id, input_tokens, output_tokens, total_tokens, cache_read_tokens, \
                cache_write_tokens, calls) \
             VALUES ($1, $3, $4, $5, $6, $7, 1) \
             ON CONFLICT (user_id) DO UPDATE SET \
               input_tokens = t.input_tokens + EXCLUDED.input_tokens, \
               output_tokens = t.output_tokens + EXCLUDED.output_tokens, \
               total_tokens = t.total_tokens + EXCLUDED.total_tokens, \
               cache_read_tokens = t.cache_read_tokens + EXCLUDED.cache_read_tokens, \
               cache_write_tokens = t.cache_write_tokens + EXCLUDED.cache_write_tokens, \
               calls = t.calls + 1",
        )
        .bind(user.as_str())
        .bind(at.date_naive())
        .bind(input)
        .bind(output)
        .bind(total)
        .bind(cache_read)
        .bind(cache_write)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn daily_usage(
        &self,
        user: &UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        check_usage_days(from, to)?;
        let rows = sqlx::query(
            "SELECT day, input_tokens, output_tokens, total_tokens, cache_read_tokens, \
             cache_write_tokens, calls FROM usage_days \
             WHERE user_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
        )
        .bind(user.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(rows::daily_usage).collect()
    }
}
