//! Appends: sequence numbers allocated inside the transaction that stores the messages, so
//! appends commit in sequence order with no gap.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::TransactWriteItem;
use bedrock_chat_core::store::{AppendRequest, AppendTarget, Appended};
use bedrock_chat_core::{
    ChatId, InvalidInput, Message, MessageId, NewMessage, Resource, StoreError, Timestamp, UserId,
};

use super::items::{self, n, Item, Location};
use super::messages::{ITEM_ROOM, MAX_TRANSACT_BYTES, MAX_TRANSACT_ITEMS};
use super::table::{Outcome, NOT_EXISTS};
use super::{DynamoDbHistoryStore, BACKEND};
use crate::codec::metadata_to_json;

/// Positions in an append's transaction: the conversation item comes first, and when the
/// append creates the conversation, the chat id's owner item second.
const CONVERSATION: usize = 0;
const OWNER: usize = 1;

/// What one consistent read before an append found.
struct Snapshot {
    /// The user's conversation item, if it exists.
    conversation: Option<Item>,
    /// Index items of the request's ids that the user has stored already.
    known: Vec<Item>,
}

fn id_taken(chat: ChatId) -> StoreError {
    StoreError::Conflict {
        message: format!("conversation id {chat} is taken"),
    }
}

impl DynamoDbHistoryStore {
    /// Refuses what cannot fit in DynamoDB's items and transactions, before writing.
    pub(super) fn check_sizes(request: &AppendRequest) -> Result<(), InvalidInput> {
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
            let parts = items::PartsLayout::of(&message.content, &message.parts)?;
            items += 1 + items::pieces(&message.content).len() + parts.pieces.len();
            bytes += room + message.content.len() + parts.len();
        }
        if items > MAX_TRANSACT_ITEMS || bytes > MAX_TRANSACT_BYTES {
            return Err(InvalidInput::new(
                "messages",
                "are too large for one DynamoDB transaction",
            ));
        }
        Ok(())
    }

    /// Reads the conversation and the request's message ids in one consistent batch.
    async fn snapshot(
        &self,
        user: &UserId,
        request: &AppendRequest,
    ) -> Result<Snapshot, StoreError> {
        let chat = request.chat_id();
        let mut keys = vec![items::conversation_key(user, chat)];
        keys.extend(
            request
                .messages
                .iter()
                .map(|m| items::index_key(user, m.id)),
        );
        let conversation_pk = items::user_pk(user);
        let mut snapshot = Snapshot {
            conversation: None,
            known: Vec::new(),
        };
        for item in self.batch_get(keys).await? {
            if item.get(items::PK) == Some(&conversation_pk) {
                snapshot.conversation = Some(item);
            } else {
                snapshot.known.push(item);
            }
        }
        Ok(snapshot)
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
            let (item, pieces) = items::message_items(user, chat, seq, message, now)?;
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

    /// The messages as an append from `first` on stores them.
    fn stored(
        user: &UserId,
        chat: ChatId,
        first: u64,
        messages: &[NewMessage],
        now: Timestamp,
    ) -> Result<Vec<Message>, StoreError> {
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let seq = first + i as u64;
                let (item, _) = items::message_items(user, chat, seq, m, now)?;
                let rest: Vec<String> = items::pieces(&m.content)[1..]
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect();
                let parts = items::PartsLayout::of(&m.content, &m.parts)?;
                items::message_from(&item, &rest, &parts.pieces)
            })
            .collect()
    }

    /// Settles an append some of whose ids the user has stored: a retry of one stored
    /// append in this conversation returns its messages; anything else is NotFound or
    /// Conflict.
    async fn settle_known(
        &self,
        user: &UserId,
        request: &AppendRequest,
        snapshot: Snapshot,
    ) -> Result<Appended, StoreError> {
        let chat = request.chat_id();
        let mut at: HashMap<MessageId, Location> = HashMap::new();
        for item in &snapshot.known {
            let location = items::location_from(item)?;
            at.insert(location.id, location);
        }
        if snapshot.conversation.is_none() && matches!(request.target, AppendTarget::Existing(_)) {
            return Err(StoreError::not_found(Resource::Conversation));
        }
        let all_here = request.messages.iter().all(|m| {
            at.get(&m.id)
                .is_some_and(|l| l.chat == chat && l.user == user.as_str())
        });
        if !all_here || snapshot.conversation.is_none() {
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

    /// The conversation's part of an append after `last` (the `last_seq` read): move
    /// `last_seq` on by `count`, on the condition that it is still `last`. Two appends
    /// that read the same `last` cannot both commit.
    fn advance(
        &self,
        user: &UserId,
        chat: ChatId,
        last: u64,
        count: u64,
        now: Timestamp,
    ) -> Result<TransactWriteItem, StoreError> {
        let expression = self
            .touched(chat, now)
            .set("last_seq", n(last + count))
            .add("count", n(count))
            .value(":expected", n(last));
        self.update(
            items::conversation_key(user, chat),
            expression,
            Some("#last_seq = :expected"),
        )
    }

    pub(super) async fn append_messages(
        &self,
        user: &UserId,
        request: AppendRequest,
    ) -> Result<Appended, StoreError> {
        request.validate()?;
        Self::check_sizes(&request)?;
        let chat = request.chat_id();
        let count = request.messages.len() as u64;
        let _turn = self.appends.turn(chat).await;
        let now = self.clock.now();
        for attempt in 0..self.retry.max_attempts {
            if attempt > 0 {
                self.retry.pause(attempt - 1).await;
            }
            let snapshot = self.snapshot(user, &request).await?;
            if !snapshot.known.is_empty() {
                return self.settle_known(user, &request, snapshot).await;
            }
            let (first, mut writes) = match (&snapshot.conversation, &request.target) {
                (Some(conversation), _) => {
                    let last: u64 = items::get_n(conversation, "last_seq")?;
                    (last + 1, vec![self.advance(user, chat, last, count, now)?])
                }
                (None, AppendTarget::Existing(_)) => {
                    return Err(StoreError::not_found(Resource::Conversation))
                }
                (None, AppendTarget::CreateIfMissing(new)) => {
                    let conversation =
                        items::new_conversation_item(user, new, now, &request.messages);
                    let writes = vec![
                        self.put(conversation, Some(NOT_EXISTS), now)?,
                        self.put(Self::owner_item(user, chat), Some(NOT_EXISTS), now)?,
                    ];
                    (1, writes)
                }
            };
            let creating = snapshot.conversation.is_none();
            writes.extend(self.message_writes(user, chat, first, &request.messages, now)?);
            let outcome = self.transact(writes).await?;
            if outcome == Outcome::Committed {
                return Ok(Appended {
                    messages: Self::stored(user, chat, first, &request.messages, now)?,
                    already_stored: false,
                });
            }
            // Nothing was written. A concurrent append took these sequence numbers or
            // stored these ids, or the conversation was created or deleted meanwhile: the
            // next snapshot tells which. Only a chat id owned by someone else settles here.
            if creating && outcome.failed_at(OWNER) && !outcome.failed_at(CONVERSATION) {
                let owner = self.get_item(items::owner_key(chat)).await?;
                let owned_by_user = owner
                    .as_ref()
                    .and_then(|o| items::opt_s(o, "user"))
                    .is_some_and(|owner| owner == user.as_str());
                if !owned_by_user {
                    return Err(id_taken(chat));
                }
                // The user's own id, its conversation being deleted: the id is taken
                // until the deletion finishes.
                if self
                    .get_item(items::conversation_key(user, chat))
                    .await?
                    .is_none()
                {
                    return Err(id_taken(chat));
                }
            }
            tracing::debug!(attempt, %chat, "DynamoDB append lost a race; retrying");
        }
        Err(StoreError::Unavailable {
            backend: BACKEND,
            source: "the append kept conflicting with concurrent appends".into(),
        })
    }
}
