//! The [`HistoryStore`] implementation: each method is one of the operations kept by
//! concern in [`conversations`](super::conversations), [`append`](super::append),
//! [`messages`](super::messages) and [`usage`](super::usage).

use async_trait::async_trait;
use bedrock_chat_core::store::{AppendRequest, Appended, ListOptions, Page};
use bedrock_chat_core::{
    ChatId, Conversation, ConversationUpdate, DailyUsage, HistoryStore, Message, MessageId,
    MessageUpdate, NewConversation, StoreError, Timestamp, Usage, UsageTotals, UserId,
};
use chrono::NaiveDate;

use super::error::classify;
use super::DynamoDbHistoryStore;

#[async_trait]
impl HistoryStore for DynamoDbHistoryStore {
    fn backend(&self) -> &'static str {
        super::BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&*self.table)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn create_conversation(
        &self,
        user: &UserId,
        conversation: NewConversation,
    ) -> Result<Conversation, StoreError> {
        self.create_conversation_item(user, conversation).await
    }

    async fn get_conversation(
        &self,
        user: &UserId,
        id: ChatId,
    ) -> Result<Conversation, StoreError> {
        super::items::conversation_from(&self.conversation_item(user, id).await?)
    }

    async fn list_conversations(
        &self,
        user: &UserId,
        options: ListOptions,
    ) -> Result<Page<Conversation>, StoreError> {
        self.list_conversation_items(user, options).await
    }

    async fn update_conversation(
        &self,
        user: &UserId,
        id: ChatId,
        update: ConversationUpdate,
    ) -> Result<Conversation, StoreError> {
        self.update_conversation_item(user, id, update).await
    }

    async fn delete_conversation(&self, user: &UserId, id: ChatId) -> Result<(), StoreError> {
        self.delete_conversation_items(user, id).await
    }

    async fn append(&self, user: &UserId, request: AppendRequest) -> Result<Appended, StoreError> {
        self.append_messages(user, request).await
    }

    async fn recent_messages(
        &self,
        user: &UserId,
        chat_id: ChatId,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.recent_message_items(user, chat_id, limit).await
    }

    async fn list_messages(
        &self,
        user: &UserId,
        chat_id: ChatId,
        options: ListOptions,
    ) -> Result<Page<Message>, StoreError> {
        self.list_message_items(user, chat_id, options).await
    }

    async fn get_message(&self, user: &UserId, id: MessageId) -> Result<Message, StoreError> {
        self.get_message_item(user, id).await
    }

    async fn update_message(
        &self,
        user: &UserId,
        id: MessageId,
        update: MessageUpdate,
    ) -> Result<Message, StoreError> {
        self.update_message_item(user, id, update).await
    }

    async fn delete_message(&self, user: &UserId, id: MessageId) -> Result<(), StoreError> {
        self.delete_message_item(user, id).await
    }

    async fn usage(&self, user: &UserId) -> Result<UsageTotals, StoreError> {
        self.usage_totals(user).await
    }

    async fn record_usage(
        &self,
        user: &UserId,
        at: Timestamp,
        usage: Usage,
    ) -> Result<(), StoreError> {
        self.record_usage_items(user, at, usage).await
    }

    async fn daily_usage(
        &self,
        user: &UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        self.daily_usage_items(user, from, to).await
    }
}
