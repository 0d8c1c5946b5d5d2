//! [`HistoryStore`] for [`RedisHistoryStore`]: every operation is one script call.

use ::redis::Script;
use async_trait::async_trait;
use bedrock_chat_core::store::{
    check_usage_days, AppendRequest, AppendTarget, Appended, Cursor, ListOptions, MessageRange,
    Page,
};
use bedrock_chat_core::{
    ChatId, Conversation, ConversationUpdate, DailyUsage, HistoryStore, InvalidInput, Message,
    MessageId, MessageUpdate, NewConversation, Resource, StoreError, Timestamp, Usage, UsageTotals,
    UserId,
};
use chrono::NaiveDate;

use super::error::classify;
use super::rows::{self, activity_digits, list_member, Header, Reply};
use super::{RedisHistoryStore, BACKEND};
use crate::codec::{edited_parts, malformed, metadata_to_json, parts_from_json, parts_to_json};

impl RedisHistoryStore {
    /// Runs `script` with the common arguments (prefix, TTL, now), then `args`, then `now`
    /// as the digits of a list member (the prelude reads it as the last argument).
    async fn run(&self, script: &Script, now: i64, args: &[&str]) -> Result<Reply, StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(&self.prefix).arg(self.ttl_millis).arg(now);
        for arg in args {
            invocation.arg(*arg);
        }
        invocation.arg(activity_digits(now));
        let mut connection = self.connection.clone();
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(classify)
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp_micros()
    }
}

/// How many times an edit of a message with parts reads its parts and tries again when
/// they changed in between (another edit of the same message won).
const EDIT_ATTEMPTS: usize = 8;

fn unexpected(status: &str) -> StoreError {
    malformed(BACKEND, format!("unexpected script status {status:?}"))
}

/// The single row of an `ok` reply.
fn single(reply: Reply, resource: Resource) -> Result<Vec<Option<String>>, StoreError> {
    let (status, rows) = reply;
    match status.as_str() {
        "ok" => rows
            .into_iter()
            .next()
            .ok_or_else(|| malformed(BACKEND, "an empty reply")),
        "not_found" => Err(StoreError::not_found(resource)),
        other => Err(unexpected(other)),
    }
}

/// The rows of an `ok` reply; `not_found` means the user has no such conversation.
fn all(reply: Reply) -> Result<Vec<Vec<Option<String>>>, StoreError> {
    let (status, rows) = reply;
    match status.as_str() {
        "ok" => Ok(rows),
        "not_found" => Err(StoreError::not_found(Resource::Conversation)),
        other => Err(unexpected(other)),
    }
}

fn flag(set: bool) -> &'static str {
    if set {
        "1"
    } else {
        "0"
    }
}

fn messages(rows: &[Vec<Option<String>>]) -> Result<Vec<Message>, StoreError> {
    rows.iter().map(|r| rows::message(r)).collect()
}

#[async_trait]
impl HistoryStore for RedisHistoryStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: String = ::redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn create_conversation(
        &self,
        user: &UserId,
        conversation: NewConversation,
    ) -> Result<Conversation, StoreError> {
        let now = self.now();
        let id = conversation.id.to_string();
        let metadata = metadata_to_json(&conversation.metadata);
        let member = list_member(now, conversation.id);
        let (status, rows) = self
            .run(
                &self.scripts.create,
                now,
                &[
                    user.as_str(),
                    &id,
                    &conversation.title,
                    flag(conversation.system_prompt.is_some()),
                    conversation.system_prompt.as_deref().unwrap_or_default(),
                    &metadata,
                    &member,
                ],
            )
            .await?;
        if status == "conflict" {
            return Err(StoreError::Conflict {
                message: format!("conversation id {id} is taken"),
            });
        }
        rows::conversation(&single((status, rows), Resource::Conversation)?)
    }

    async fn get_conversation(
        &self,
        user: &UserId,
        id: ChatId,
    ) -> Result<Conversation, StoreError> {
        let reply = self
            .run(
                &self.scripts.get_conversation,
                self.now(),
                &[user.as_str(), &id.to_string()],
            )
            .await?;
        rows::conversation(&single(reply, Resource::Conversation)?)
    }

    async fn list_conversations(
        &self,
        user: &UserId,
        options: ListOptions,
    ) -> Result<Page<Conversation>, StoreError> {
        let start = match options.conversations_before()? {
            Some((updated_at, id)) => {
                format!("({}", list_member(updated_at.timestamp_micros(), id))
            }
            None => String::from("+"),
        };
        let want = (options.limit + 1).to_string();
        let reply = self
            .run(
                &self.scripts.list_conversations,
                self.now(),
                &[user.as_str(), &start, &want],
            )
            .await?;
        let items = all(reply)?
            .iter()
            .map(|r| rows::conversation(r))
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
        let (prompt_mode, prompt) = match &update.system_prompt {
            None => ("keep", ""),
            Some(None) => ("clear", ""),
            Some(Some(prompt)) => ("set", prompt.as_str()),
        };
        let metadata = update
            .metadata
            .as_ref()
            .map(metadata_to_json)
            .unwrap_or_default();
        let reply = self
            .run(
                &self.scripts.update_conversation,
                self.now(),
                &[
                    user.as_str(),
                    &id.to_string(),
                    flag(update.title.is_some()),
                    update.title.as_deref().unwrap_or_default(),
                    prompt_mode,
                    prompt,
                    flag(update.metadata.is_some()),
                    &metadata,
                ],
            )
            .await?;
        rows::conversation(&single(reply, Resource::Conversation)?)
    }

    async fn delete_conversation(&self, user: &UserId, id: ChatId) -> Result<(), StoreError> {
        let reply = self
            .run(
                &self.scripts.delete_conversation,
                self.now(),
                &[user.as_str(), &id.to_string()],
            )
            .await?;
        all(reply).map(drop)
    }

    async fn append(&self, user: &UserId, request: AppendRequest) -> Result<Appended, StoreError> {
        request.validate()?;
        let now = self.now();
        let chat_id = request.chat_id();
        let chat = chat_id.to_string();
        let (new, create) = match &request.target {
            AppendTarget::CreateIfMissing(new) => (Some(new), "1"),
            AppendTarget::Existing(_) => (None, "0"),
        };
        let title = new.map(|n| n.title.as_str()).unwrap_or_default();
        let prompt = new.and_then(|n| n.system_prompt.as_deref());
        let chat_metadata = new
            .map(|n| metadata_to_json(&n.metadata))
            .unwrap_or_default();
        let member = list_member(now, chat_id);
        let count = request.messages.len().to_string();

        // Owned encodings first, then one argument list borrowing them.
        struct Encoded {
            id: String,
            header: String,
            metadata: String,
            usage: String,
            parts: String,
        }
        let encoded = request
            .messages
            .iter()
            .map(|m| {
                let header = Header {
                    role: m.role,
                    reply_to: m.reply_to,
                    model: m.model.clone(),
                    usage: m.usage,
                    created_at: now,
                };
                Ok(Encoded {
                    id: m.id.to_string(),
                    header: serde_json::to_string(&header)
                        .map_err(|e| malformed(BACKEND, format!("message header: {e}")))?,
                    metadata: metadata_to_json(&m.metadata),
                    usage: m
                        .usage
                        .map(|u| {
                            format!("{} {} {}", u.input_tokens, u.output_tokens, u.total_tokens)
                        })
                        .unwrap_or_default(),
                    parts: parts_to_json(&m.parts)?.unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut args: Vec<&str> = vec![
            user.as_str(),
            &chat,
            create,
            title,
            flag(prompt.is_some()),
            prompt.unwrap_or_default(),
            &chat_metadata,
            &member,
            &count,
        ];
        for (m, e) in request.messages.iter().zip(&encoded) {
            args.extend([
                e.id.as_str(),
                e.header.as_str(),
                m.content.as_str(),
                e.metadata.as_str(),
                e.usage.as_str(),
                e.parts.as_str(),
            ]);
        }
        let (status, rows) = self.run(&self.scripts.append, now, &args).await?;
        match status.as_str() {
            "appended" | "stored" => Ok(Appended {
                messages: messages(&rows)?,
                already_stored: status == "stored",
            }),
            "not_found" => Err(StoreError::not_found(Resource::Conversation)),
            "conflict_chat" => Err(StoreError::Conflict {
                message: format!("conversation id {chat} is taken"),
            }),
            "conflict_ids" => Err(StoreError::Conflict {
                message: "some of these message ids are stored already".into(),
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn recent_messages(
        &self,
        user: &UserId,
        chat_id: ChatId,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let reply = self
            .run(
                &self.scripts.messages,
                self.now(),
                &[
                    user.as_str(),
                    &chat_id.to_string(),
                    "recent",
                    &limit.to_string(),
                    "0",
                ],
            )
            .await?;
        messages(&all(reply)?)
    }

    async fn list_messages(
        &self,
        user: &UserId,
        chat_id: ChatId,
        options: ListOptions,
    ) -> Result<Page<Message>, StoreError> {
        let (mode, bound, newest_first) = match options.message_range()? {
            MessageRange::After(after) => ("after", after.to_string(), false),
            MessageRange::Before(None) => ("before", String::from("+inf"), true),
            MessageRange::Before(Some(before)) => ("before", format!("({before}"), true),
        };
        let reply = self
            .run(
                &self.scripts.messages,
                self.now(),
                &[
                    user.as_str(),
                    &chat_id.to_string(),
                    mode,
                    &(options.limit + 1).to_string(),
                    &bound,
                ],
            )
            .await?;
        let items = messages(&all(reply)?)?;
        Ok(Page::from_overfetched(items, options.limit, |m| {
            if newest_first {
                Cursor::before_seq(m.seq)
            } else {
                Cursor::after_seq(m.seq)
            }
        }))
    }

    async fn get_message(&self, user: &UserId, id: MessageId) -> Result<Message, StoreError> {
        let reply = self
            .run(
                &self.scripts.get_message,
                self.now(),
                &[user.as_str(), &id.to_string()],
            )
            .await?;
        rows::message(&single(reply, Resource::Message)?)
    }

    async fn update_message(
        &self,
        user: &UserId,
        id: MessageId,
        update: MessageUpdate,
    ) -> Result<Message, StoreError> {
        let metadata = update
            .metadata
            .as_ref()
            .map(metadata_to_json)
            .unwrap_or_default();
        let id = id.to_string();
        let content = update.content.as_deref();
        // (the parts as read, the parts with the new text): see update_message.lua.
        let mut parts: Option<(String, String)> = None;
        for _ in 0..EDIT_ATTEMPTS {
            let (read, edited) = parts
                .as_ref()
                .map_or(("", ""), |(read, edited)| (read.as_str(), edited.as_str()));
            let reply = self
                .run(
                    &self.scripts.update_message,
                    self.now(),
                    &[
                        user.as_str(),
                        &id,
                        flag(content.is_some()),
                        content.unwrap_or_default(),
                        flag(update.metadata.is_some()),
                        &metadata,
                        flag(parts.is_some()),
                        read,
                        edited,
                    ],
                )
                .await?;
            if reply.0 != "parts" {
                return rows::message(&single(reply, Resource::Message)?);
            }
            let stored = single(("ok".into(), reply.1), Resource::Message)?
                .into_iter()
                .next()
                .flatten()
                .ok_or_else(|| malformed(BACKEND, "a parts reply without parts"))?;
            let edited = edited_parts(
                parts_from_json(BACKEND, Some(&stored))?,
                content.unwrap_or_default(),
            );
            let edited = parts_to_json(&edited)?.unwrap_or_default();
            parts = Some((stored, edited));
        }
        Err(StoreError::Conflict {
            message: "the message's parts kept changing during the edit".into(),
        })
    }

    async fn delete_message(&self, user: &UserId, id: MessageId) -> Result<(), StoreError> {
        let (status, _) = self
            .run(
                &self.scripts.delete_message,
                self.now(),
                &[user.as_str(), &id.to_string()],
            )
            .await?;
        match status.as_str() {
            "ok" => Ok(()),
            "not_found" => Err(StoreError::not_found(Resource::Message)),
            other => Err(unexpected(other)),
        }
    }

    async fn usage(&self, user: &UserId) -> Result<UsageTotals, StoreError> {
        let reply = self
            .run(&self.scripts.usage, self.now(), &[user.as_str()])
            .await?;
        let row = single(reply, Resource::Conversation)?;
        Ok(UsageTotals {
            conversations: rows::count(&row, 0)?,
            messages: rows::count(&row, 1)?,
            usage: Usage {
                input_tokens: rows::count(&row, 2)?,
                output_tokens: rows::count(&row, 3)?,
                total_tokens: rows::count(&row, 4)?,
                cache_read_tokens: rows::count(&row, 6)?,
                cache_write_tokens: rows::count(&row, 7)?,
            },
            calls: rows::count(&row, 5)?,
        })
    }

    async fn record_usage(
        &self,
        user: &UserId,
        at: Timestamp,
        usage: Usage,
    ) -> Result<(), StoreError> {
        let input = to_i64(usage.input_tokens, "input_tokens")?.to_string();
        let output = to_i64(usage.output_tokens, "output_tokens")?.to_string();
        let total = to_i64(usage.total_tokens, "total_tokens")?.to_string();
        let cache_read = to_i64(usage.cache_read_tokens, "cache_read_tokens")?.to_string();
        let cache_write = to_i64(usage.cache_write_tokens, "cache_write_tokens")?.to_string();
        let day = at.date_naive();
        let (status, _) = self
            .run(
                &self.scripts.record_usage,
                self.now(),
                &[
                    user.as_str(),
                    &day.format("%Y-%m-%d").to_string(),
                    &day_number(day).to_string(),
                    &input,
                    &output,
                    &total,
                    &cache_read,
                    &cache_write,
                ],
            )
            .await?;
        match status.as_str() {
            "ok" => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn daily_usage(
        &self,
        user: &UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        check_usage_days(from, to)?;
        let reply = self
            .run(
                &self.scripts.daily_usage,
                self.now(),
                &[
                    user.as_str(),
                    &day_number(from).to_string(),
                    &day_number(to).to_string(),
                ],
            )
            .await?;
        all(reply)?.iter().map(|r| rows::daily_usage(r)).collect()
    }
}

/// A token count as HINCRBY takes it: a signed 64-bit number.
fn to_i64(value: u64, field: &str) -> Result<i64, InvalidInput> {
    i64::try_from(value).map_err(|_| InvalidInput::new(field, "is too large"))
}

/// Days since 1970-01-01: a day's score in the user's list of days with usage.
fn day_number(day: NaiveDate) -> i64 {
    // NaiveDate's default is 1970-01-01.
    (day - NaiveDate::default()).num_days()
}
