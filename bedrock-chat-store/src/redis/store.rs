//! [`HistoryStore`] for [`RedisHistoryStore`]: every operation is one script call.

use ::redis::Script;
use async_trait::async_trait;
use bedrock_chat_core::store::{AppendRequest, AppendTarget, Appended, Cursor, ListOptions, Page};
use bedrock_chat_core::{
    ChatId, Conversation, ConversationUpdate, HistoryStore, Message, MessageId, MessageUpdate,
    NewConversation, Resource, StoreError, Usage, UsageTotals, UserId,
};

use super::error::classify;
use super::rows::{self, list_member, Header, Reply};
use super::{RedisHistoryStore, BACKEND};
use crate::codec::{malformed, metadata_to_json};

impl RedisHistoryStore {
    /// Runs `script` with the common arguments (prefix, TTL, now) and then `args`.
    async fn run(&self, script: &Script, now: i64, args: &[&str]) -> Result<Reply, StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(&self.prefix).arg(self.ttl_millis).arg(now);
        for arg in args {
            invocation.arg(*arg);
        }
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
            Some((created_at, id)) => {
                format!("({}", list_member(created_at.timestamp_micros(), id))
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
        let after = match options.message_range()? {
            bedrock_chat_core::store::MessageRange::After(after) => after,
            bedrock_chat_core::store::MessageRange::Before(_) => {
                return Err(StoreError::Unsupported {
                    backend: self.backend(),
                    operation: "list_messages newest first",
                })
            }
        };
        let reply = self
            .run(
                &self.scripts.messages,
                self.now(),
                &[
                    user.as_str(),
                    &chat_id.to_string(),
                    "after",
                    &(options.limit + 1).to_string(),
                    &after.to_string(),
                ],
            )
            .await?;
        let items = messages(&all(reply)?)?;
        Ok(Page::from_overfetched(items, options.limit, |m| {
            Cursor::after_seq(m.seq)
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
        let reply = self
            .run(
                &self.scripts.update_message,
                self.now(),
                &[
                    user.as_str(),
                    &id.to_string(),
                    flag(update.content.is_some()),
                    update.content.as_deref().unwrap_or_default(),
                    flag(update.metadata.is_some()),
                    &metadata,
                ],
            )
            .await?;
        rows::message(&single(reply, Resource::Message)?)
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
        let mut totals = UsageTotals::default();
        for row in all(reply)? {
            totals.conversations += 1;
            totals.messages = totals.messages.saturating_add(rows::count(&row, 0)?);
            let usage = Usage {
                input_tokens: rows::count(&row, 1)?,
                output_tokens: rows::count(&row, 2)?,
                total_tokens: rows::count(&row, 3)?,
            };
            totals.usage.input_tokens =
                totals.usage.input_tokens.saturating_add(usage.input_tokens);
            totals.usage.output_tokens = totals
                .usage
                .output_tokens
                .saturating_add(usage.output_tokens);
            totals.usage.total_tokens =
                totals.usage.total_tokens.saturating_add(usage.total_tokens);
        }
        Ok(totals)
    }
}
