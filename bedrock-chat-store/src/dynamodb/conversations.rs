//! Conversations: create, read, list by last activity, update, delete.

use aws_sdk_dynamodb::types::ReturnValue;
use bedrock_chat_core::store::{AppendRequest, Cursor, ListOptions, Page};
use bedrock_chat_core::{
    ChatId, Conversation, ConversationUpdate, MessageId, NewConversation, Resource, StoreError,
    UserId,
};

use super::error::{classify, code};
use super::items::{self, s, Item};
use super::table::{Outcome, EXISTS, NOT_EXISTS};
use super::DynamoDbHistoryStore;
use crate::codec::{malformed, metadata_to_json};

impl DynamoDbHistoryStore {
    pub(super) async fn conversation_item(
        &self,
        user: &UserId,
        chat: ChatId,
    ) -> Result<Item, StoreError> {
        self.get_item(items::conversation_key(user, chat))
            .await?
            .ok_or_else(|| StoreError::not_found(Resource::Conversation))
    }

    /// The item that marks `chat` as the user's: chat ids are unique across users.
    pub(super) fn owner_item(user: &UserId, chat: ChatId) -> Item {
        let mut owner = items::owner_key(chat);
        owner.insert("user".to_owned(), s(user.as_str()));
        owner
    }

    pub(super) async fn create_conversation_item(
        &self,
        user: &UserId,
        conversation: NewConversation,
    ) -> Result<Conversation, StoreError> {
        let now = self.clock.now();
        let request = AppendRequest::create_if_missing(conversation.clone(), Vec::new());
        Self::check_sizes(&request)?;
        let item = items::new_conversation_item(user, &conversation, now, &[]);
        let writes = vec![
            self.put(item.clone(), Some(NOT_EXISTS), now)?,
            self.put(
                Self::owner_item(user, conversation.id),
                Some(NOT_EXISTS),
                now,
            )?,
        ];
        match self.transact(writes).await? {
            Outcome::Committed => items::conversation_from(&item),
            Outcome::ConditionFailed(_) => Err(StoreError::Conflict {
                message: format!("conversation id {} is taken", conversation.id),
            }),
        }
    }

    pub(super) async fn list_conversation_items(
        &self,
        user: &UserId,
        options: ListOptions,
    ) -> Result<Page<Conversation>, StoreError> {
        let before = options
            .conversations_before()?
            .map(|(at, id)| items::updated_key(at, id));
        let limit = options.limit as usize;
        let condition = if before.is_some() {
            "pk = :pk AND updated_key < :before"
        } else {
            "pk = :pk"
        };
        let found = self
            .query(
                || {
                    let query = self
                        .client
                        .query()
                        .index_name(items::BY_UPDATED)
                        .key_condition_expression(condition)
                        .expression_attribute_values(":pk", items::user_pk(user))
                        .scan_index_forward(false);
                    match &before {
                        Some(before) => {
                            query.expression_attribute_values(":before", s(before.clone()))
                        }
                        None => query,
                    }
                },
                limit + 1,
            )
            .await?;
        let conversations = found
            .iter()
            .map(items::conversation_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetched(
            conversations,
            options.limit,
            Cursor::after_conversation,
        ))
    }

    pub(super) async fn update_conversation_item(
        &self,
        user: &UserId,
        id: ChatId,
        update: ConversationUpdate,
    ) -> Result<Conversation, StoreError> {
        let now = self.clock.now();
        let mut expression = self.touched(id, now);
        if let Some(title) = update.title {
            expression = expression.set("title", s(title));
        }
        match update.system_prompt {
            Some(Some(prompt)) => expression = expression.set("prompt", s(prompt)),
            Some(None) => expression = expression.remove("prompt"),
            None => {}
        }
        if let Some(metadata) = update.metadata {
            expression = expression.set("meta", s(metadata_to_json(&metadata)));
        }
        let text = expression.text();
        let result = self
            .retry_conflicts(|| {
                self.client
                    .update_item()
                    .table_name(&*self.table)
                    .set_key(Some(items::conversation_key(user, id)))
                    .update_expression(text.clone())
                    .condition_expression(EXISTS)
                    .set_expression_attribute_names(Some(expression.names.clone()))
                    .set_expression_attribute_values(Some(expression.values.clone()))
                    .return_values(ReturnValue::AllNew)
                    .send()
            })
            .await;
        match result {
            Ok(output) => {
                items::conversation_from(&output.attributes().cloned().unwrap_or_default())
            }
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => {
                Err(StoreError::not_found(Resource::Conversation))
            }
            Err(e) => Err(classify(e)),
        }
    }

    pub(super) async fn delete_conversation_items(
        &self,
        user: &UserId,
        id: ChatId,
    ) -> Result<(), StoreError> {
        // Removing the conversation item first makes the whole conversation NotFound at
        // once (and makes any append racing with it fail its condition); its messages are
        // cleared after it.
        let result = self
            .retry_conflicts(|| {
                self.client
                    .delete_item()
                    .table_name(&*self.table)
                    .set_key(Some(items::conversation_key(user, id)))
                    .condition_expression(EXISTS)
                    .send()
            })
            .await;
        match result {
            Ok(_) => {}
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => {
                return Err(StoreError::not_found(Resource::Conversation))
            }
            Err(e) => return Err(classify(e)),
        }
        let partition = self
            .query(
                || {
                    self.client
                        .query()
                        .key_condition_expression("pk = :pk")
                        .expression_attribute_values(":pk", items::chat_pk(id))
                },
                usize::MAX,
            )
            .await?;
        let mut keys = Vec::with_capacity(partition.len() * 2);
        for item in &partition {
            let sk = items::get_s(item, items::SK)?;
            if sk.starts_with("M#") {
                let message_id: MessageId = items::get_s(item, "id")?
                    .parse()
                    .map_err(|_| malformed(super::BACKEND, "message id"))?;
                keys.push(items::index_key(user, message_id));
            }
            keys.push(items::key(
                items::get_s(item, items::PK)?.to_owned(),
                sk.to_owned(),
            ));
        }
        self.batch_delete(keys).await
    }
}
