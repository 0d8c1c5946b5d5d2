//! [`HistoryStore`] for [`SqliteHistoryStore`].

use std::collections::HashMap;

use async_trait::async_trait;
use bedrock_chat_core::store::{AppendRequest, AppendTarget, Appended, Cursor, ListOptions, Page};
use bedrock_chat_core::{
    ChatId, Conversation, ConversationUpdate, HistoryStore, Message, MessageId, MessageUpdate,
    NewConversation, Resource, StoreError, Usage, UsageTotals, UserId,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::error::classify;
use super::rows::{self, CONVERSATION_COLUMNS, MESSAGE_COLUMNS, MESSAGE_COLUMNS_M};
use super::{SqliteHistoryStore, BACKEND};
use crate::codec::{metadata_to_json, to_i64, to_u64, usage_to_columns};

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
            Some((created_at, id)) => {
                let sql = format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = ? \
                     AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?"
                );
                sqlx::query(&sql)
                    .bind(user.as_str())
                    .bind(created_at.timestamp_micros())
                    .bind(id.to_string())
                    .bind(page_limit(&options))
                    .fetch_all(&self.reader)
                    .await
            }
            None => {
                let sql = format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = ? \
                     ORDER BY created_at DESC, id DESC LIMIT ?"
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
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN ({placeholders})");
        let mut known = sqlx::query(&sql);
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
            "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING {MESSAGE_COLUMNS}"
        );
        let mut messages = Vec::with_capacity(count);
        for (new, (input, output, total)) in request.messages.into_iter().zip(usages) {
            seq += 1;
            let row = sqlx::query(&insert)
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
            "SELECT {MESSAGE_COLUMNS_M} FROM messages m JOIN conversations c ON c.id = m.chat_id \
             WHERE m.chat_id = ? AND c.user_id = ? ORDER BY m.seq DESC LIMIT ?"
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
        let after = match options.message_range()? {
            bedrock_chat_core::store::MessageRange::After(after) => after,
            bedrock_chat_core::store::MessageRange::Before(_) => {
                return Err(StoreError::Unsupported {
                    backend: self.backend(),
                    operation: "list_messages newest first",
                })
            }
        };
        // A cursor past what SQLite can hold has nothing after it.
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS_M} FROM messages m JOIN conversations c ON c.id = m.chat_id \
             WHERE m.chat_id = ? AND c.user_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(chat_id.to_string())
            .bind(user.as_str())
            .bind(after)
            .bind(page_limit(&options))
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        let items = self.messages_of(user, chat_id, rows).await?;
        Ok(Page::from_overfetched(items, options.limit, |m| {
            Cursor::after_seq(m.seq)
        }))
    }

    async fn get_message(&self, user: &UserId, id: MessageId) -> Result<Message, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS_M} FROM messages m JOIN conversations c ON c.id = m.chat_id \
             WHERE m.id = ? AND c.user_id = ?"
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(user.as_str())
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
             WHERE id = ? AND chat_id IN (SELECT id FROM conversations WHERE user_id = ?) \
             RETURNING {MESSAGE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(update.content)
            .bind(update.metadata.as_ref().map(metadata_to_json))
            .bind(now)
            .bind(id.to_string())
            .bind(user.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?
            .ok_or(StoreError::not_found(Resource::Message))?;
        let message = rows::message(&row)?;
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
        let chat: Option<(String,)> = sqlx::query_as(
            "DELETE FROM messages \
             WHERE id = ? AND chat_id IN (SELECT id FROM conversations WHERE user_id = ?) \
             RETURNING chat_id",
        )
        .bind(id.to_string())
        .bind(user.as_str())
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
               COALESCE(SUM(m.input_tokens), 0) AS input_tokens, \
               COALESCE(SUM(m.output_tokens), 0) AS output_tokens, \
               COALESCE(SUM(m.total_tokens), 0) AS total_tokens \
             FROM messages m JOIN conversations c ON c.id = m.chat_id WHERE c.user_id = ?1",
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
            },
            calls: 0,
        })
    }
}
