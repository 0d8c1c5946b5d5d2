//! The [`HistoryStore`] implementation over the table laid out in [`items`](super::items).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, KeysAndAttributes, Put, ReturnValue, TransactWriteItem,
    Update, WriteRequest,
};
use bedrock_chat_core::store::{AppendRequest, AppendTarget, Appended, Cursor, ListOptions, Page};
use bedrock_chat_core::{
    ChatId, Conversation, ConversationUpdate, HistoryStore, InvalidInput, Message, MessageId,
    MessageUpdate, NewConversation, NewMessage, Resource, StoreError, Timestamp, UsageTotals,
    UserId,
};

use super::error::{build_error, classify, code};
use super::items::{self, n, s, Item, Location};
use super::DynamoDbHistoryStore;
use crate::codec::metadata_to_json;

/// Room in a message item beside the first piece of text (DynamoDB items hold 400 KB).
const ITEM_ROOM: usize = 90_000;
/// What one transaction may carry: 100 items and 4 MB, less room for keys and names.
const MAX_TRANSACT_ITEMS: usize = 100;
const MAX_TRANSACT_BYTES: usize = 3_800_000;
/// Keys per BatchGetItem and writes per BatchWriteItem, as DynamoDB allows.
const BATCH_GET: usize = 100;
const BATCH_WRITE: usize = 25;

const NOT_EXISTS: &str = "attribute_not_exists(pk)";
const EXISTS: &str = "attribute_exists(pk)";

fn not_found(resource: Resource) -> StoreError {
    StoreError::not_found(resource)
}

impl DynamoDbHistoryStore {
    fn expiry(&self, now: Timestamp) -> Option<AttributeValue> {
        self.ttl.map(|ttl| {
            let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
            n(now.timestamp().saturating_add(ttl))
        })
    }

    fn put(
        &self,
        mut item: Item,
        condition: Option<&str>,
        now: Timestamp,
    ) -> Result<TransactWriteItem, StoreError> {
        if let Some(expiry) = self.expiry(now) {
            item.insert(items::EXPIRES.to_owned(), expiry);
        }
        let put = Put::builder()
            .table_name(&*self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete(&self, key: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&*self.table)
            .set_key(Some(key))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// An update of the conversation item, which must exist: `updated` set to `now`, and
    /// each `(attribute, delta)` added.
    fn touch_conversation(
        &self,
        user: &UserId,
        chat: ChatId,
        now: Timestamp,
        adds: &[(&str, i128)],
    ) -> Result<TransactWriteItem, StoreError> {
        let mut names = HashMap::from([("#updated".to_owned(), "updated".to_owned())]);
        let mut values = HashMap::from([(":now".to_owned(), n(now.timestamp_micros()))]);
        let mut expression = String::from("SET #updated = :now");
        if let Some(expiry) = self.expiry(now) {
            expression.push_str(", #expires = :expires");
            names.insert("#expires".to_owned(), items::EXPIRES.to_owned());
            values.insert(":expires".to_owned(), expiry);
        }
        // Attribute names go through placeholders: COUNT, IN, OUT and TOTAL are DynamoDB
        // reserved words.
        let clauses: Vec<String> = adds
            .iter()
            .map(|(name, delta)| {
                names.insert(format!("#{name}"), (*name).to_owned());
                values.insert(format!(":{name}"), n(*delta));
                format!("#{name} :{name}")
            })
            .collect();
        if !clauses.is_empty() {
            expression.push_str(" ADD ");
            expression.push_str(&clauses.join(", "));
        }
        let update = Update::builder()
            .table_name(&*self.table)
            .set_key(Some(items::conversation_key(user, chat)))
            .update_expression(expression)
            .condition_expression(EXISTS)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Runs a transaction; `Ok(false)` when its conditions failed (nothing written).
    async fn transact(&self, writes: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if code(&e) == Some("TransactionCanceledException") => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }

    async fn get_item(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&*self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(output.item().cloned())
    }

    /// Consistent reads of many keys; the items found, in no particular order.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET) {
            let mut pending = Some(chunk.to_vec());
            while let Some(keys) = pending.take().filter(|k| !k.is_empty()) {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(build_error)?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&*self.table, request)
                    .send()
                    .await
                    .map_err(classify)?;
                if let Some(items) = output.responses().and_then(|r| r.get(&*self.table)) {
                    found.extend(items.iter().cloned());
                }
                pending = output
                    .unprocessed_keys()
                    .and_then(|u| u.get(&*self.table))
                    .map(|k| k.keys().to_vec());
            }
        }
        Ok(found)
    }

    async fn batch_delete(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        for chunk in keys.chunks(BATCH_WRITE) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|key| {
                    let delete = DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map_err(build_error)?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<Result<_, StoreError>>()?;
            while !pending.is_empty() {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&*self.table, pending)
                    .send()
                    .await
                    .map_err(classify)?;
                pending = output
                    .unprocessed_items()
                    .and_then(|u| u.get(&*self.table))
                    .cloned()
                    .unwrap_or_default();
            }
        }
        Ok(())
    }

    /// Runs a query page after page until `want` items came back or none are left.
    async fn query(
        &self,
        make: impl Fn() -> QueryFluentBuilder,
        want: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let limit = i32::try_from(want - out.len()).unwrap_or(i32::MAX);
            let output = make()
                .table_name(&*self.table)
                .consistent_read(true)
                .limit(limit)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            out.extend(output.items().iter().cloned());
            match output.last_evaluated_key() {
                Some(key) if out.len() < want => start = Some(key.clone()),
                _ => return Ok(out),
            }
        }
    }

    async fn conversation_item(&self, user: &UserId, chat: ChatId) -> Result<Item, StoreError> {
        self.get_item(items::conversation_key(user, chat))
            .await?
            .ok_or_else(|| not_found(Resource::Conversation))
    }

    /// Where the user's message `id` is; NotFound for a message that is someone else's.
    async fn locate(&self, user: &UserId, id: MessageId) -> Result<Location, StoreError> {
        let item = self
            .get_item(items::index_key(id))
            .await?
            .ok_or_else(|| not_found(Resource::Message))?;
        let location = items::location_from(&item)?;
        if location.user != user.as_str() {
            return Err(not_found(Resource::Message));
        }
        // A message whose conversation is being deleted is already gone.
        self.conversation_item(user, location.chat)
            .await
            .map_err(|_| not_found(Resource::Message))?;
        Ok(location)
    }

    /// Messages from their items, with the text of long ones put back together.
    async fn messages(&self, chat: ChatId, found: Vec<Item>) -> Result<Vec<Message>, StoreError> {
        let mut piece_keys = Vec::new();
        for item in &found {
            let seq: u64 = items::get_n(item, "seq")?;
            for piece in 1..=items::piece_count(item)? {
                piece_keys.push(items::piece_key(chat, seq, piece));
            }
        }
        let mut pieces: HashMap<String, String> = HashMap::new();
        for item in self.batch_get(piece_keys).await? {
            pieces.insert(
                items::get_s(&item, items::SK)?.to_owned(),
                items::get_s(&item, "data")?.to_owned(),
            );
        }
        found
            .iter()
            .map(|item| {
                let seq: u64 = items::get_n(item, "seq")?;
                let rest = (1..=items::piece_count(item)?)
                    .map(|piece| {
                        let sk = items::piece_sk(seq, piece);
                        pieces.remove(&sk).ok_or_else(|| {
                            crate::codec::malformed(
                                super::BACKEND,
                                format!("piece {sk} is missing"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                items::message_from(item, &rest)
            })
            .collect()
    }

    async fn message_at(&self, chat: ChatId, seq: u64) -> Result<Message, StoreError> {
        let item = self
            .get_item(items::message_key(chat, seq))
            .await?
            .ok_or_else(|| not_found(Resource::Message))?;
        let mut messages = self.messages(chat, vec![item]).await?;
        messages.pop().ok_or_else(|| not_found(Resource::Message))
    }

    /// Refuses what cannot fit in DynamoDB's items and transactions, before writing.
    fn check_sizes(request: &AppendRequest) -> Result<(), InvalidInput> {
        let mut items = 1;
        let mut bytes = 0;
        if let AppendTarget::CreateIfMissing(new) = &request.target {
            let room = new.title.len()
                + new.system_prompt.as_ref().map_or(0, String::len)
                + metadata_to_json(&new.metadata).len();
            if room > items::PIECE_BYTES {
                return Err(InvalidInput::new(
                    "conversation",
                    "title, system prompt and metadata are too large for DynamoDB",
                ));
            }
            items += 1;
            bytes += room;
        }
        for message in &request.messages {
            let room = metadata_to_json(&message.metadata).len()
                + message.model.as_ref().map_or(0, String::len);
            if room > ITEM_ROOM {
                return Err(InvalidInput::new(
                    "metadata",
                    "is too large for a DynamoDB item",
                ));
            }
            items += 1 + items::pieces(&message.content).len();
            bytes += room + message.content.len();
        }
        if items > MAX_TRANSACT_ITEMS || bytes > MAX_TRANSACT_BYTES {
            return Err(InvalidInput::new(
                "messages",
                "are too large for one DynamoDB transaction",
            ));
        }
        Ok(())
    }

    /// The writes that store `messages` from sequence number `first` on.
    fn message_writes(
        &self,
        user: &UserId,
        chat: ChatId,
        first: u64,
        messages: &[NewMessage],
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut writes = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            let seq = first + i as u64;
            let (item, pieces) = items::message_items(user, chat, seq, message, now);
            writes.push(self.put(item, Some(NOT_EXISTS), now)?);
            for piece in pieces {
                writes.push(self.put(piece, Some(NOT_EXISTS), now)?);
            }
            writes.push(self.put(
                items::index_item(user, chat, seq, message.id),
                Some(NOT_EXISTS),
                now,
            )?);
        }
        Ok(writes)
    }

    /// Settles an append some of whose ids are stored: a retry of one stored append in
    /// this conversation returns its messages; anything else is NotFound or Conflict.
    async fn settle_known(
        &self,
        user: &UserId,
        request: &AppendRequest,
        known: Vec<Item>,
    ) -> Result<Appended, StoreError> {
        let chat = request.chat_id();
        let mut at: HashMap<MessageId, Location> = HashMap::new();
        for item in &known {
            let pk = items::get_s(item, items::PK)?;
            let id = pk
                .trim_start_matches("MI#")
                .parse()
                .map_err(|_| crate::codec::malformed(super::BACKEND, format!("index key {pk}")))?;
            at.insert(id, items::location_from(item)?);
        }
        let conversation = self.get_item(items::conversation_key(user, chat)).await?;
        let all_here = request.messages.iter().all(|m| {
            at.get(&m.id)
                .is_some_and(|l| l.chat == chat && l.user == user.as_str())
        });
        if conversation.is_none() && matches!(request.target, AppendTarget::Existing(_)) {
            return Err(not_found(Resource::Conversation));
        }
        if !all_here || conversation.is_none() {
            return Err(StoreError::Conflict {
                message: "some of these message ids are stored already".into(),
            });
        }
        let keys = request
            .messages
            .iter()
            .filter_map(|m| at.get(&m.id))
            .map(|l| items::message_key(chat, l.seq))
            .collect();
        let mut messages = self.messages(chat, self.batch_get(keys).await?).await?;
        let order: HashMap<MessageId, usize> = request
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id, i))
            .collect();
        messages.sort_by_key(|m| order.get(&m.id).copied().unwrap_or(usize::MAX));
        Ok(Appended {
            messages,
            already_stored: true,
        })
    }

    /// Reserves `count` sequence numbers of the user's conversation: the first of them, or
    /// `None` when the user has no such conversation.
    async fn reserve(
        &self,
        user: &UserId,
        chat: ChatId,
        count: u64,
    ) -> Result<Option<u64>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&*self.table)
            .set_key(Some(items::conversation_key(user, chat)))
            .update_expression("ADD #last_seq :n")
            .condition_expression(EXISTS)
            .expression_attribute_names("#last_seq", "last_seq")
            .expression_attribute_values(":n", n(count))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                let attributes = output.attributes().cloned().unwrap_or_default();
                let last: u64 = items::get_n(&attributes, "last_seq")?;
                Ok(Some(last + 1 - count))
            }
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    async fn append_once(
        &self,
        user: &UserId,
        request: &AppendRequest,
        now: Timestamp,
    ) -> Result<Option<Appended>, StoreError> {
        let chat = request.chat_id();
        let count = request.messages.len() as u64;
        let (first, mut writes) = match self.reserve(user, chat, count).await? {
            Some(first) => {
                let usage = items::total_usage(&request.messages);
                let adds = [
                    ("count", i128::from(count)),
                    ("in", i128::from(usage.input_tokens)),
                    ("out", i128::from(usage.output_tokens)),
                    ("total", i128::from(usage.total_tokens)),
                ];
                (
                    first,
                    vec![self.touch_conversation(user, chat, now, &adds)?],
                )
            }
            None => match &request.target {
                AppendTarget::Existing(_) => return Err(not_found(Resource::Conversation)),
                AppendTarget::CreateIfMissing(new) => {
                    let conversation =
                        items::new_conversation_item(user, new, now, &request.messages);
                    let mut owner = items::owner_key(chat);
                    owner.insert("user".to_owned(), s(user.as_str()));
                    (
                        1,
                        vec![
                            self.put(conversation, Some(NOT_EXISTS), now)?,
                            self.put(owner, Some(NOT_EXISTS), now)?,
                        ],
                    )
                }
            },
        };
        writes.extend(self.message_writes(user, chat, first, &request.messages, now)?);
        if !self.transact(writes).await? {
            return Ok(None);
        }
        let stored = request
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let seq = first + i as u64;
                let (item, _) = items::message_items(user, chat, seq, m, now);
                items::message_from(
                    &item,
                    &items::pieces(&m.content)[1..]
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect::<Vec<_>>(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Appended {
            messages: stored,
            already_stored: false,
        }))
    }
}

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
        let now = self.clock.now();
        let request = AppendRequest::create_if_missing(conversation.clone(), Vec::new());
        Self::check_sizes(&request)?;
        let item = items::new_conversation_item(user, &conversation, now, &[]);
        let mut owner = items::owner_key(conversation.id);
        owner.insert("user".to_owned(), s(user.as_str()));
        let writes = vec![
            self.put(item.clone(), Some(NOT_EXISTS), now)?,
            self.put(owner, Some(NOT_EXISTS), now)?,
        ];
        if !self.transact(writes).await? {
            return Err(StoreError::Conflict {
                message: format!("conversation id {} is taken", conversation.id),
            });
        }
        items::conversation_from(&item)
    }

    async fn get_conversation(
        &self,
        user: &UserId,
        id: ChatId,
    ) -> Result<Conversation, StoreError> {
        items::conversation_from(&self.conversation_item(user, id).await?)
    }

    async fn list_conversations(
        &self,
        user: &UserId,
        options: ListOptions,
    ) -> Result<Page<Conversation>, StoreError> {
        let before = options
            .conversations_before()?
            .map(|(at, id)| items::created_key(at, id));
        let limit = options.limit as usize;
        let condition = if before.is_some() {
            "pk = :pk AND created_key < :before"
        } else {
            "pk = :pk"
        };
        let mut values = HashMap::from([(":pk".to_owned(), items::user_pk(user))]);
        if let Some(before) = before {
            values.insert(":before".to_owned(), s(before));
        }
        let found = self
            .query(
                || {
                    self.client
                        .query()
                        .index_name(items::BY_CREATED)
                        .key_condition_expression(condition)
                        .set_expression_attribute_values(Some(values.clone()))
                        .scan_index_forward(false)
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

    async fn update_conversation(
        &self,
        user: &UserId,
        id: ChatId,
        update: ConversationUpdate,
    ) -> Result<Conversation, StoreError> {
        let now = self.clock.now();
        let mut sets = vec!["#updated = :now"];
        let mut removes = Vec::new();
        let mut names = HashMap::from([("#updated".to_owned(), "updated".to_owned())]);
        let mut values = HashMap::from([(":now".to_owned(), n(now.timestamp_micros()))]);
        let mut set = |attribute: &str, value: AttributeValue, clause: &'static str| {
            names.insert(format!("#{attribute}"), attribute.to_owned());
            values.insert(format!(":{attribute}"), value);
            sets.push(clause);
        };
        if let Some(title) = update.title {
            set("title", s(title), "#title = :title");
        }
        if let Some(Some(prompt)) = &update.system_prompt {
            set("prompt", s(prompt.clone()), "#prompt = :prompt");
        }
        if let Some(metadata) = update.metadata {
            set("meta", s(metadata_to_json(&metadata)), "#meta = :meta");
        }
        if let Some(expiry) = self.expiry(now) {
            set(items::EXPIRES, expiry, "#expires_at = :expires_at");
        }
        if let Some(None) = update.system_prompt {
            names.insert("#prompt".to_owned(), "prompt".to_owned());
            removes.push("#prompt");
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let result = self
            .client
            .update_item()
            .table_name(&*self.table)
            .set_key(Some(items::conversation_key(user, id)))
            .update_expression(expression)
            .condition_expression(EXISTS)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                items::conversation_from(&output.attributes().cloned().unwrap_or_default())
            }
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => {
                Err(not_found(Resource::Conversation))
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn delete_conversation(&self, user: &UserId, id: ChatId) -> Result<(), StoreError> {
        // Removing the conversation item first makes the whole conversation NotFound at
        // once; its messages are cleared after it.
        let result = self
            .client
            .delete_item()
            .table_name(&*self.table)
            .set_key(Some(items::conversation_key(user, id)))
            .condition_expression(EXISTS)
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => {
                return Err(not_found(Resource::Conversation))
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
                    .map_err(|_| crate::codec::malformed(super::BACKEND, "message id"))?;
                keys.push(items::index_key(message_id));
            }
            keys.push(items::key(
                items::get_s(item, items::PK)?.to_owned(),
                sk.to_owned(),
            ));
        }
        self.batch_delete(keys).await
    }

    async fn append(&self, user: &UserId, request: AppendRequest) -> Result<Appended, StoreError> {
        request.validate()?;
        Self::check_sizes(&request)?;
        let now = self.clock.now();
        for _ in 0..3 {
            let probe = request
                .messages
                .iter()
                .map(|m| items::index_key(m.id))
                .collect();
            let known = self.batch_get(probe).await?;
            if !known.is_empty() {
                return self.settle_known(user, &request, known).await;
            }
            if let Some(appended) = self.append_once(user, &request, now).await? {
                return Ok(appended);
            }
            // The transaction's conditions failed: a racing append stored these ids, or
            // created this conversation, or another user holds its id. Look again.
            if let AppendTarget::CreateIfMissing(_) = &request.target {
                let owner = self.get_item(items::owner_key(request.chat_id())).await?;
                let mine = self
                    .get_item(items::conversation_key(user, request.chat_id()))
                    .await?;
                if owner.is_some() && mine.is_none() {
                    return Err(StoreError::Conflict {
                        message: format!("conversation id {} is taken", request.chat_id()),
                    });
                }
            }
        }
        Err(StoreError::Unavailable {
            backend: super::BACKEND,
            source: "the append kept conflicting with concurrent writes".into(),
        })
    }

    async fn recent_messages(
        &self,
        user: &UserId,
        chat_id: ChatId,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.conversation_item(user, chat_id).await?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut found = self
            .query(
                || {
                    self.client
                        .query()
                        .key_condition_expression("pk = :pk AND begins_with(sk, :m)")
                        .expression_attribute_values(":pk", items::chat_pk(chat_id))
                        .expression_attribute_values(":m", s("M#"))
                        .scan_index_forward(false)
                },
                limit as usize,
            )
            .await?;
        found.reverse();
        self.messages(chat_id, found).await
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
        self.conversation_item(user, chat_id).await?;
        let limit = options.limit as usize;
        let found = self
            .query(
                || {
                    self.client
                        .query()
                        .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                        .expression_attribute_values(":pk", items::chat_pk(chat_id))
                        .expression_attribute_values(
                            ":from",
                            s(items::message_sk(after.saturating_add(1))),
                        )
                        .expression_attribute_values(":to", s(items::message_sk(u64::MAX)))
                },
                limit + 1,
            )
            .await?;
        let messages = self.messages(chat_id, found).await?;
        Ok(Page::from_overfetched(messages, options.limit, |m| {
            Cursor::after_seq(m.seq)
        }))
    }

    async fn get_message(&self, user: &UserId, id: MessageId) -> Result<Message, StoreError> {
        let location = self.locate(user, id).await?;
        self.message_at(location.chat, location.seq).await
    }

    async fn update_message(
        &self,
        user: &UserId,
        id: MessageId,
        update: MessageUpdate,
    ) -> Result<Message, StoreError> {
        let location = self.locate(user, id).await?;
        let (chat, seq) = (location.chat, location.seq);
        let old = self
            .get_item(items::message_key(chat, seq))
            .await?
            .ok_or_else(|| not_found(Resource::Message))?;
        let old_pieces = items::piece_count(&old)?;
        let now = self.clock.now();
        let mut item = old.clone();
        item.insert("updated".to_owned(), n(now.timestamp_micros()));
        if let Some(metadata) = &update.metadata {
            let json = metadata_to_json(metadata);
            if json.len() > ITEM_ROOM {
                return Err(
                    InvalidInput::new("metadata", "is too large for a DynamoDB item").into(),
                );
            }
            item.insert("meta".to_owned(), s(json));
        }
        let mut writes = Vec::new();
        if let Some(content) = &update.content {
            let pieces = items::pieces(content);
            if pieces.len() + 2 > MAX_TRANSACT_ITEMS || content.len() > MAX_TRANSACT_BYTES {
                return Err(InvalidInput::new(
                    "content",
                    "is too large for one DynamoDB transaction",
                )
                .into());
            }
            item.insert("content".to_owned(), s(pieces[0]));
            item.insert("pieces".to_owned(), n(pieces.len() - 1));
            for piece in items::piece_items(chat, seq, &pieces[1..]) {
                writes.push(self.put(piece, None, now)?);
            }
            for stale in pieces.len()..=old_pieces {
                writes.push(self.delete(items::piece_key(chat, seq, stale), None)?);
            }
        }
        writes.push(self.put(item, Some(EXISTS), now)?);
        writes.push(self.touch_conversation(user, chat, now, &[])?);
        if !self.transact(writes).await? {
            return Err(not_found(Resource::Message));
        }
        self.message_at(chat, seq).await
    }

    async fn delete_message(&self, user: &UserId, id: MessageId) -> Result<(), StoreError> {
        let location = self.locate(user, id).await?;
        let (chat, seq) = (location.chat, location.seq);
        let item = self
            .get_item(items::message_key(chat, seq))
            .await?
            .ok_or_else(|| not_found(Resource::Message))?;
        let usage = items::get_usage(&item)?.unwrap_or_default();
        let now = self.clock.now();
        let mut writes = vec![
            self.delete(items::message_key(chat, seq), Some(EXISTS))?,
            self.delete(items::index_key(id), Some(EXISTS))?,
        ];
        for piece in 1..=items::piece_count(&item)? {
            writes.push(self.delete(items::piece_key(chat, seq, piece), None)?);
        }
        let adds = [
            ("count", -1),
            ("in", -i128::from(usage.input_tokens)),
            ("out", -i128::from(usage.output_tokens)),
            ("total", -i128::from(usage.total_tokens)),
        ];
        writes.push(self.touch_conversation(user, chat, now, &adds)?);
        if !self.transact(writes).await? {
            return Err(not_found(Resource::Message));
        }
        Ok(())
    }

    async fn usage(&self, user: &UserId) -> Result<UsageTotals, StoreError> {
        let conversations = self
            .query(
                || {
                    self.client
                        .query()
                        .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
                        .expression_attribute_values(":pk", items::user_pk(user))
                        .expression_attribute_values(":c", s("C#"))
                        .projection_expression("#count, #in, #out, #total")
                        .expression_attribute_names("#count", "count")
                        .expression_attribute_names("#in", "in")
                        .expression_attribute_names("#out", "out")
                        .expression_attribute_names("#total", "total")
                },
                usize::MAX,
            )
            .await?;
        let mut totals = UsageTotals::default();
        for item in &conversations {
            totals.conversations += 1;
            totals.messages += items::get_n::<u64>(item, "count")?;
            totals.usage.input_tokens += items::get_n::<u64>(item, "in")?;
            totals.usage.output_tokens += items::get_n::<u64>(item, "out")?;
            totals.usage.total_tokens += items::get_n::<u64>(item, "total")?;
        }
        Ok(totals)
    }
}
