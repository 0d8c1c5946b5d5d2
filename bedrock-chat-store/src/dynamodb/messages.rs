//! Messages once stored: read back (with long texts put together), listed either way,
//! edited, deleted.

use std::collections::HashMap;

use bedrock_chat_core::store::{Cursor, ListOptions, MessageRange, Page};
use bedrock_chat_core::{
    ChatId, InvalidInput, Message, MessageId, MessageUpdate, Resource, StoreError, UserId,
};

use super::items::{self, n, s, Item, Location};
use super::table::{Outcome, EXISTS};
use super::{DynamoDbHistoryStore, BACKEND};
use crate::codec::{edited_parts, malformed, metadata_to_json};

/// Room in a message item beside the first piece of text (DynamoDB items hold 400 KB).
pub(super) const ITEM_ROOM: usize = 90_000;
/// What one transaction may carry: 100 items and 4 MB, less room for keys and names.
pub(super) const MAX_TRANSACT_ITEMS: usize = 100;
pub(super) const MAX_TRANSACT_BYTES: usize = 3_800_000;

fn message_not_found() -> StoreError {
    StoreError::not_found(Resource::Message)
}

impl DynamoDbHistoryStore {
    /// Where the user's message `id` is; NotFound for one they do not have.
    async fn locate(&self, user: &UserId, id: MessageId) -> Result<Location, StoreError> {
        let item = self
            .get_item(items::index_key(user, id))
            .await?
            .ok_or_else(message_not_found)?;
        let location = items::location_from(&item)?;
        if location.user != user.as_str() {
            return Err(message_not_found());
        }
        // A message whose conversation is being deleted is already gone.
        self.conversation_item(user, location.chat)
            .await
            .map_err(|_| message_not_found())?;
        Ok(location)
    }

    /// Messages from their items, with the text of long ones put back together.
    pub(super) async fn messages(
        &self,
        chat: ChatId,
        found: Vec<Item>,
    ) -> Result<Vec<Message>, StoreError> {
        let mut piece_keys = Vec::new();
        for item in &found {
            let seq: u64 = items::get_n(item, "seq")?;
            for piece in 1..=items::piece_count(item)? {
                piece_keys.push(items::piece_key(chat, seq, piece));
            }
            for piece in 1..=items::parts_piece_count(item)? {
                piece_keys.push(items::parts_piece_key(chat, seq, piece));
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
                let mut take = |sk: String| {
                    pieces
                        .remove(&sk)
                        .ok_or_else(|| malformed(BACKEND, format!("piece {sk} is missing")))
                };
                let rest = (1..=items::piece_count(item)?)
                    .map(|piece| take(items::piece_sk(seq, piece)))
                    .collect::<Result<Vec<_>, _>>()?;
                let parts = (1..=items::parts_piece_count(item)?)
                    .map(|piece| take(items::parts_piece_sk(seq, piece)))
                    .collect::<Result<Vec<_>, _>>()?;
                items::message_from(item, &rest, &parts)
            })
            .collect()
    }

    async fn message_at(&self, chat: ChatId, seq: u64) -> Result<Message, StoreError> {
        let item = self
            .get_item(items::message_key(chat, seq))
            .await?
            .ok_or_else(message_not_found)?;
        let mut messages = self.messages(chat, vec![item]).await?;
        messages.pop().ok_or_else(message_not_found)
    }

    /// Up to `want` message items with sequence numbers in `[from, to]`, ascending or
    /// descending.
    async fn message_items_between(
        &self,
        chat: ChatId,
        from: u64,
        to: u64,
        ascending: bool,
        want: usize,
    ) -> Result<Vec<Item>, StoreError> {
        if from > to || want == 0 {
            return Ok(Vec::new());
        }
        self.query(
            || {
                self.client
                    .query()
                    .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                    .expression_attribute_values(":pk", items::chat_pk(chat))
                    .expression_attribute_values(":from", s(items::message_sk(from)))
                    .expression_attribute_values(":to", s(items::message_sk(to)))
                    .scan_index_forward(ascending)
            },
            want,
        )
        .await
    }

    pub(super) async fn recent_message_items(
        &self,
        user: &UserId,
        chat: ChatId,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.conversation_item(user, chat).await?;
        let mut found = self
            .message_items_between(chat, 0, u64::MAX, false, limit as usize)
            .await?;
        found.reverse();
        self.messages(chat, found).await
    }

    pub(super) async fn list_message_items(
        &self,
        user: &UserId,
        chat: ChatId,
        options: ListOptions,
    ) -> Result<Page<Message>, StoreError> {
        let range = options.message_range()?;
        self.conversation_item(user, chat).await?;
        let want = options.limit as usize + 1;
        let found = match range {
            MessageRange::After(after) => {
                self.message_items_between(chat, after.saturating_add(1), u64::MAX, true, want)
                    .await?
            }
            MessageRange::Before(before) => {
                match before.map_or(Some(u64::MAX), |b| b.checked_sub(1)) {
                    Some(to) => self.message_items_between(chat, 0, to, false, want).await?,
                    None => Vec::new(),
                }
            }
        };
        let messages = self.messages(chat, found).await?;
        Ok(match range {
            MessageRange::After(_) => {
                Page::from_overfetched(messages, options.limit, |m| Cursor::after_seq(m.seq))
            }
            MessageRange::Before(_) => {
                Page::from_overfetched(messages, options.limit, |m| Cursor::before_seq(m.seq))
            }
        })
    }

    pub(super) async fn get_message_item(
        &self,
        user: &UserId,
        id: MessageId,
    ) -> Result<Message, StoreError> {
        let location = self.locate(user, id).await?;
        self.message_at(location.chat, location.seq).await
    }

    pub(super) async fn update_message_item(
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
            .ok_or_else(message_not_found)?;
        let old_pieces = items::piece_count(&old)?;
        let old_parts_pieces = items::parts_piece_count(&old)?;
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
            // New text on a message with parts replaces its text parts too; the parts may
            // now go in the item or in pieces, whichever fits beside the new text.
            if old.contains_key("parts") || old_parts_pieces > 0 {
                let stored = self.message_at(chat, seq).await?;
                let parts = edited_parts(stored.parts, content);
                let layout = items::PartsLayout::of(content, &parts)?;
                if pieces.len() + layout.pieces.len() + old_parts_pieces + 2 > MAX_TRANSACT_ITEMS
                    || content.len() + layout.len() > MAX_TRANSACT_BYTES
                {
                    return Err(InvalidInput::new(
                        "content",
                        "is too large for one DynamoDB transaction",
                    )
                    .into());
                }
                layout.apply(&mut item);
                for piece in layout.piece_items(chat, seq) {
                    writes.push(self.put(piece, None, now)?);
                }
                for stale in layout.pieces.len() + 1..=old_parts_pieces {
                    writes.push(self.delete(items::parts_piece_key(chat, seq, stale), None)?);
                }
            }
        }
        writes.push(self.put(item, Some(EXISTS), now)?);
        writes.push(self.touch_conversation(user, chat, now, 0)?);
        match self.transact(writes).await? {
            Outcome::Committed => self.message_at(chat, seq).await,
            Outcome::ConditionFailed(_) => Err(message_not_found()),
        }
    }

    pub(super) async fn delete_message_item(
        &self,
        user: &UserId,
        id: MessageId,
    ) -> Result<(), StoreError> {
        let location = self.locate(user, id).await?;
        let (chat, seq) = (location.chat, location.seq);
        let item = self
            .get_item(items::message_key(chat, seq))
            .await?
            .ok_or_else(message_not_found)?;
        let now = self.clock.now();
        let mut writes = vec![
            self.delete(items::message_key(chat, seq), Some(EXISTS))?,
            self.delete(items::index_key(user, id), Some(EXISTS))?,
        ];
        for piece in 1..=items::piece_count(&item)? {
            writes.push(self.delete(items::piece_key(chat, seq, piece), None)?);
        }
        for piece in 1..=items::parts_piece_count(&item)? {
            writes.push(self.delete(items::parts_piece_key(chat, seq, piece), None)?);
        }
        writes.push(self.touch_conversation(user, chat, now, -1)?);
        match self.transact(writes).await? {
            Outcome::Committed => Ok(()),
            Outcome::ConditionFailed(_) => Err(message_not_found()),
        }
    }
}
