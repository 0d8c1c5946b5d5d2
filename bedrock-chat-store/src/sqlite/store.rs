//! [`HistoryStore`] for [`SqliteHistoryStore`].

use std::collections::HashMap;

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
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::error::classify;
use super::rows::{self, CONVERSATION_COLUMNS, MESSAGE_COLUMNS};
use super::{SqliteHistoryStore, BACKEND};
use crate::codec::{
    edited_parts, metadata_to_json, parts_to_json, to_i64, to_u64, usage_to_columns,
};

impl SqliteHistoryStore {
    /// A write transaction that takes the write lock at once (`BEGIN IMMEDIATE`): a
    /// concurrent writer waits (busy timeout) instead of failing half-way through.
    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)
    }

    /// Whether `user` owns conversation `id`.
    async fn owns(&self, user: &UserId, id: ChatId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM conversations WHERE id = ? AND user_id = ?")
            .bind(id.to_string())
            .bind(user.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
        Ok(row.is_some())
    }

    /// Messages of the user's conversation from a query binding `(chat_id, user_id)`
    /// first; an empty result is checked for ownership so that another user's
    /// conversation is NotFound, not empty.
    async fn messages_of(
        &self,
        user: &UserId,
        chat_id: ChatId,
        rows: Vec<SqliteRow>,
    ) -> Result<Vec<Message>, StoreError> {
        if rows.is_empty() && !self.owns(user, chat_id).await? {
            return Err(StoreError::not_found(Resource::Conversation));
        }
        rows.iter().map(rows::message).collect()
    }
}

fn page_limit(options: &ListOptions) -> i64 {
    i64::from(options.limit) + 1
}

async fn insert_conversation(
    tx: &mut Transaction<'static, Sqlite>,
    user: &UserId,
    new: &NewConversation,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO conversations (id, user_id, title, system_prompt, metadata, message_count, \
         last_seq, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?)",
    )
    .bind(new.id.to_string())
    .bind(user.as_str())
    .bind(&new.title)
    .bind(&new.system_prompt)
    .bind(metadata_to_json(&new.metadata))
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    Ok(())
}

#[async_trait]
impl HistoryStore for SqliteHistoryStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn create_conversation(
        &self,
        user: &UserId,
        conversation: NewConversation,
    ) -> Result<Conversation, StoreError> {
        let now = self.clock.now().timestamp_micros();
        let mut tx = self.write_tx().await?;
        insert_conversation(&mut tx, user, &conversation, now).await?;
        let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(conversation.id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(classify)?;
        let created = rows::conversation(&row)?;
        tx.commit().await.map_err(classify)?;
        Ok(created)
    }

    async fn get_conversation(
        &self,
        user: &UserId,
        id: ChatId,
    ) -> Result<Conversation, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ? AND user_id = ?"
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(user.as_str())
            .fetch_optional(&self.reader)
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
        let rows = match after {
            Some((updated_at, id)) => {
                let sql = format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = ? \
                     AND (updated_at, id) < (?, ?) ORDER BY updated_at DESC, id DESC LIMIT ?"
                );
                sqlx::query(&sql)
                    .bind(user.as_str())
                    .bind(updated_at.timestamp_micros())
                    .bind(id.to_string())
                    .bind(page_limit(&options))
                    .fetch_all(&self.reader)
                    .await
            }
            None => {
                let sql = format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = ? \
                     ORDER BY updated_at DESC, id DESC LIMIT ?"
                );
                sqlx::query(&sql)
                    .bind(user.as_str())
                    .bind(page_limit(&options))
                    .fetch_all(&self.reader)
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
        let now = self.clock.now().timestamp_micros();
        let (set_prompt, prompt) = match update.system_prompt {
            Some(prompt) => (true, prompt),
            None => (false, None),
        };
        let sql = format!(
            "UPDATE conversations SET title = COALESCE(?, title), \
             system_prompt = CASE WHEN ? THEN ? ELSE system_prompt END, \
             metadata = COALESCE(?, metadata), updated_at = ? \
             WHERE id = ? AND user_id = ? RETURNING {CONVERSATION_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(update.title)
            .bind(set_prompt)
            .bind(prompt)
            .bind(update.metadata.as_ref().map(metadata_to_json))
            .bind(now)
            .bind(id.to_string())
            .bind(user.as_str())
            .fetch_optional(&self.writer)
            .await
            .map_err(classify)?
            .ok_or(StoreError::not_found(Resource::Conversation))?;
        rows::conversation(&row)
    }

    async fn delete_conversation(&self, user: &UserId, id: ChatId) -> Result<(), StoreError> {
        // The messages go with it: ON DELETE CASCADE.
        let done = sqlx::query("DELETE FROM conversations WHERE id = ? AND user_id = ?")
            .bind(id.to_string())
            .bind(user.as_str())
            .execute(&self.writer)
            .await
            .map_err(classify)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found(Resource::Conversation));
        }
        Ok(())
    }

    async fn append(&self, user: &UserId, request: AppendRequest) -> Result<Appended, StoreError> {
        request.validate()?;
        let chat_id = request.chat_id();
        let chat = chat_id.to_string();
        let usages = request
            .messages
            .iter()
            .map(|m| usage_to_columns(m.usage))
            .collect::<Result<Vec<_>, _>>()?;
        let parts = request
            .messages
            .iter()
            .map(|m| parts_to_json(&m.parts))
            .collect::<Result<Vec<_>, _>>()?;
        let now = self.clock.now().timestamp_micros();
        let mut tx = self.write_tx().await?;

        // Check everything before writing anything; the transaction holds the write lock,
        // so nothing changes in between.
        let owner: Option<(String, i64)> =
            sqlx::query_as("SELECT user_id, last_seq FROM conversations WHERE id = ?")
                .bind(&chat)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
        let last_seq = match (&owner, &request.target) {
            (Some((owner, last_seq)), _) if owner == user.as_str() => Some(*last_seq),
            (Some(_), AppendTarget::CreateIfMissing(_)) => {
                return Err(StoreError::Conflict {
                    message: format!("conversation id {chat_id} is taken"),
                })
            }
            (_, AppendTarget::Existing(_)) => {
                return Err(StoreError::not_found(Resource::Conversation))
            }
            (None, AppendTarget::CreateIfMissing(_)) => None,
        };

        let placeholders = vec!["?"; request.messages.len()].join(", ");
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE user_id = ? AND id IN ({placeholders})"
        );
        let mut known = sqlx::query(&sql).bind(user.as_str());
        for m in &request.messages {
            known = known.bind(m.id.to_string());
        }
        let known = known
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?
            .iter()
            .map(rows::message)
            .collect::<Result<Vec<_>, _>>()?;
        if known.len() == request.messages.len() && known.iter().all(|m| m.chat_id == chat_id) {
            let mut by_id: HashMap<MessageId, Message> =
                known.into_iter().map(|m| (m.id, m)).collect();
            let messages = request
                .messages
                .iter()
                .filter_map(|m| by_id.remove(&m.id))
                .collect();
            return Ok(Appended {
                messages,
                already_stored: true,
            });
        }
        if !known.is_empty() {
            return Err(StoreError::Conflict {
                message: "some of these message ids are stored already".into(),
            });
        }

        let mut seq = match (last_seq, &request.target) {
            (Some(last_seq), _) => last_seq,
            (None, AppendTarget::CreateIfMissing(new)) => {
                insert_conversation(&mut tx, user, new, now).await?;
                0
            }
            (None, AppendTarget::Existing(_)) => {
                return Err(StoreError::not_found(Resource::Conversation))
            }
        };
        let count = request.messages.len();
        let insert = format!(
            "INSERT INTO messages (user_id, {MESSAGE_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {MESSAGE_COLUMNS}"
        );
        let mut messages = Vec::with_capacity(count);
        let columns = usages.into_iter().zip(parts);
        for (new, ((input, output, total, cache_read, cache_write), parts)) in
            request.messages.into_iter().zip(columns)
        {
            seq += 1;
            let row = sqlx::query(&insert)
                .bind(user.as_str())
                .bind(new.id.to_string())
                .bind(&chat)
                .bind(seq)
                .bind(new.role.as_str())
                .bind(new.content)
                .bind(new.reply_to.map(|r| r.to_string()))
                .bind(new.model)
                .bind(input)
                .bind(output)
                .bind(total)
                .bind(metadata_to_json(&new.metadata))
                .bind(now)
                .bind(now)
                .bind(parts)
                .bind(cache_read)
                .bind(cache_write)
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
            messages.push(rows::message(&row)?);
        }
        sqlx::query(
            "UPDATE conversations SET last_seq = ?, message_count = message_count + ?, \
             updated_at = ? WHERE id = ?",
        )
        .bind(seq)
        .bind(to_i64(count as u64, "messages")?)
        .bind(now)
        .bind(&chat)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(Appended {
            messages,
            already_stored: false,
        })
    }

    async fn recent_messages(
        &self,
        user: &UserId,
        chat_id: ChatId,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE chat_id = ? AND user_id = ? ORDER BY seq DESC LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(chat_id.to_string())
            .bind(user.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
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
        // A cursor past what SQLite can hold is past every message.
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let order = if newest_first {
            "seq < ? ORDER BY seq DESC"
        } else {
            "seq > ? ORDER BY seq"
        };
        // The (chat_id, seq) index serves both directions as a range scan.
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE chat_id = ? AND user_id = ? AND {order} LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(chat_id.to_string())
            .bind(user.as_str())
            .bind(seq)
            .bind(page_limit(&options))
            .fetch_all(&self.reader)
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
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE user_id = ? AND id = ?");
        let row = sqlx::query(&sql)
            .bind(user.as_str())
            .bind(id.to_string())
            .fetch_optional(&self.reader)
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
        let now = self.clock.now().timestamp_micros();
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "UPDATE messages SET content = COALESCE(?, content), \
             metadata = COALESCE(?, metadata), updated_at = ? \
             WHERE user_id = ? AND id = ? RETURNING {MESSAGE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(update.content.as_deref())
            .bind(update.metadata.as_ref().map(metadata_to_json))
            .bind(now)
            .bind(user.as_str())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?
            .ok_or(StoreError::not_found(Resource::Message))?;
        let mut message = rows::message(&row)?;
        if let (Some(content), false) = (&update.content, message.parts.is_empty()) {
            // New text on a message with parts: its text parts give way, in the same
            // transaction. Plain messages need no second statement.
            message.parts = edited_parts(message.parts, content);
            sqlx::query("UPDATE messages SET parts = ? WHERE user_id = ? AND id = ?")
                .bind(parts_to_json(&message.parts)?)
                .bind(user.as_str())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        sqlx::query("UPDATE conversations SET updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(message.chat_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(message)
    }

    async fn delete_message(&self, user: &UserId, id: MessageId) -> Result<(), StoreError> {
        let now = self.clock.now().timestamp_micros();
        let mut tx = self.write_tx().await?;
        let chat: Option<(String,)> =
            sqlx::query_as("DELETE FROM messages WHERE user_id = ? AND id = ? RETURNING chat_id")
                .bind(user.as_str())
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
        let Some((chat,)) = chat else {
            return Err(StoreError::not_found(Resource::Message));
        };
        sqlx::query(
            "UPDATE conversations SET message_count = message_count - 1, updated_at = ? \
             WHERE id = ?",
        )
        .bind(now)
        .bind(chat)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(())
    }

    async fn usage(&self, user: &UserId) -> Result<UsageTotals, StoreError> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM conversations WHERE user_id = ?1) AS conversations, \
               (SELECT COALESCE(SUM(message_count), 0) FROM conversations WHERE user_id = ?1) \
                 AS messages, \
               COALESCE(l.input_tokens, 0) AS input_tokens, \
               COALESCE(l.output_tokens, 0) AS output_tokens, \
               COALESCE(l.total_tokens, 0) AS total_tokens, \
               COALESCE(l.cache_read_tokens, 0) AS cache_read_tokens, \
               COALESCE(l.cache_write_tokens, 0) AS cache_write_tokens, \
               COALESCE(l.calls, 0) AS calls \
             FROM (SELECT 1) LEFT JOIN usage_ledger l ON l.user_id = ?1 AND l.day = 'total'",
        )
        .bind(user.as_str())
        .fetch_one(&self.reader)
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
        // One statement upserts the day's row and the all-time row: atomic on its own.
        sqlx::query(
            "INSERT INTO usage_ledger \
               (user_id, day, input_tokens, output_tokens, total_tokens, cache_read_tokens, \
                cache_write_tokens, calls) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1), (?1, 'total', ?3, ?4, ?5, ?6, ?7, 1) \
             ON CONFLICT (user_id, day) DO UPDATE SET \
               input_tokens = input_tokens + excluded.input_tokens, \
               output_tokens = output_tokens + excluded.output_tokens, \
               total_tokens = total_tokens + excluded.total_tokens, \
               cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens, \
               cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens, \
               calls = calls + 1",
        )
        .bind(user.as_str())
        .bind(day_key(at.date_naive()))
        .bind(input)
        .bind(output)
        .bind(total)
        .bind(cache_read)
        .bind(cache_write)
        .execute(&self.writer)
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
             cache_write_tokens, calls FROM usage_ledger \
             WHERE user_id = ? AND day BETWEEN ? AND ? ORDER BY day",
        )
        .bind(user.as_str())
        .bind(day_key(from))
        .bind(day_key(to))
        .fetch_all(&self.reader)
        .await
        .map_err(classify)?;
        rows.iter().map(rows::daily_usage).collect()
    }
}

/// A day as the ledger keys it: `YYYY-MM-DD`, whose text order is date order.
fn day_key(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}
