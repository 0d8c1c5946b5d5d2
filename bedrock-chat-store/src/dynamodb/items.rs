//! The table's items: keys, and conversions between items and the domain types.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use bedrock_chat_core::parts::Part;
use bedrock_chat_core::InvalidInput;
use bedrock_chat_core::{
    ChatId, Conversation, Message, MessageId, NewConversation, NewMessage, Role, StoreError,
    Timestamp, Usage, UserId,
};
use chrono::{Datelike, NaiveDate};

use super::BACKEND;
use crate::codec::{
    from_micros, malformed, metadata_from_json, metadata_to_json, parts_from_json, parts_to_json,
};

/// An item: attribute name to value.
pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) const PK: &str = "pk";
pub(super) const SK: &str = "sk";
/// The local secondary index listing a user's conversations by last activity.
pub(super) const BY_UPDATED: &str = "by_updated";
/// Its sort key: `updated` then the chat id, see [`updated_key`].
pub(super) const UPDATED_KEY: &str = "updated_key";
pub(super) const EXPIRES: &str = "expires_at";

/// Message text is kept in pieces of at most this many bytes, so that no item comes near
/// DynamoDB's 400 KB limit whatever the text's length.
pub(super) const PIECE_BYTES: usize = 300_000;

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A key of the table.
pub(super) fn key(pk: String, sk: String) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

pub(super) fn conversation_key(user: &UserId, chat: ChatId) -> Item {
    key(format!("U#{user}"), format!("C#{chat}"))
}

pub(super) fn user_pk(user: &UserId) -> AttributeValue {
    s(format!("U#{user}"))
}

/// Marks a chat id as taken, whoever owns it: ids are unique across users.
pub(super) fn owner_key(chat: ChatId) -> Item {
    key(format!("CH#{chat}"), "#OWNER".to_owned())
}

pub(super) fn chat_pk(chat: ChatId) -> AttributeValue {
    s(format!("CH#{chat}"))
}

pub(super) fn message_sk(seq: u64) -> String {
    format!("M#{seq:020}")
}

pub(super) fn message_key(chat: ChatId, seq: u64) -> Item {
    key(format!("CH#{chat}"), message_sk(seq))
}

pub(super) fn piece_sk(seq: u64, piece: usize) -> String {
    format!("P#{seq:020}#{piece:04}")
}

pub(super) fn piece_key(chat: ChatId, seq: u64, piece: usize) -> Item {
    key(format!("CH#{chat}"), piece_sk(seq, piece))
}

/// A piece of a message's parts JSON that did not fit in its item.
pub(super) fn parts_piece_sk(seq: u64, piece: usize) -> String {
    format!("Q#{seq:020}#{piece:04}")
}

pub(super) fn parts_piece_key(chat: ChatId, seq: u64, piece: usize) -> Item {
    key(format!("CH#{chat}"), parts_piece_sk(seq, piece))
}

/// Where a message's parts JSON goes: in its item (`parts`) when it fits beside the first
/// piece of text, else all of it in pieces of their own (`parts_pieces` says how many).
/// A plain-text message has neither.
pub(super) struct PartsLayout {
    pub(super) inline: Option<String>,
    pub(super) pieces: Vec<String>,
}

impl PartsLayout {
    /// The layout of `parts` beside the text `content`.
    pub(super) fn of(content: &str, parts: &[Part]) -> Result<Self, InvalidInput> {
        let Some(json) = parts_to_json(parts)? else {
            return Ok(Self {
                inline: None,
                pieces: Vec::new(),
            });
        };
        let first_text = pieces(content)[0].len();
        if first_text + json.len() <= PIECE_BYTES {
            return Ok(Self {
                inline: Some(json),
                pieces: Vec::new(),
            });
        }
        let pieces = pieces(&json).into_iter().map(str::to_owned).collect();
        Ok(Self {
            inline: None,
            pieces,
        })
    }

    /// How many bytes of parts it holds.
    pub(super) fn len(&self) -> usize {
        self.inline.as_ref().map_or(0, String::len)
            + self.pieces.iter().map(String::len).sum::<usize>()
    }

    /// Sets the message item's parts attributes (removing any it had).
    pub(super) fn apply(&self, item: &mut Item) {
        item.remove("parts");
        item.remove("parts_pieces");
        if let Some(inline) = &self.inline {
            item.insert("parts".to_owned(), s(inline.clone()));
        }
        if !self.pieces.is_empty() {
            item.insert("parts_pieces".to_owned(), n(self.pieces.len()));
        }
    }

    /// The items of its pieces.
    pub(super) fn piece_items(&self, chat: ChatId, seq: u64) -> Vec<Item> {
        self.pieces
            .iter()
            .enumerate()
            .map(|(i, data)| {
                let mut item = parts_piece_key(chat, seq, i + 1);
                item.insert("data".to_owned(), s(data.clone()));
                item
            })
            .collect()
    }
}

/// How many pieces a message item's parts are in (0: in the item, or no parts).
pub(super) fn parts_piece_count(item: &Item) -> Result<usize, StoreError> {
    if item.contains_key("parts_pieces") {
        get_n(item, "parts_pieces")
    } else {
        Ok(0)
    }
}

/// Where the user's message id points: its conversation and sequence number. Keyed by
/// user, so two users may use the same id. The id has a fixed form and ends the key, so
/// no user name can make two keys meet.
pub(super) fn index_key(user: &UserId, id: MessageId) -> Item {
    key(format!("MI#{user}#{id}"), "#".to_owned())
}

/// The user's usage bucket for `day` (UTC).
pub(super) fn day_key(user: &UserId, day: NaiveDate) -> Item {
    key(format!("U#{user}"), day_sk(day))
}

/// Day buckets sort by day: days since the common era, as sortable text.
pub(super) fn day_sk(day: NaiveDate) -> String {
    format!("UD#{}", sortable_micros(i64::from(day.num_days_from_ce())))
}

/// The user's all-time usage total.
pub(super) fn total_key(user: &UserId) -> Item {
    key(format!("U#{user}"), "UT".to_owned())
}

/// Microseconds as text that sorts as the numbers do (negative ones too).
pub(super) fn sortable_micros(micros: i64) -> String {
    format!("{:020}", (micros as u64) ^ (1 << 63))
}

/// The listing position of a conversation: by last activity, newest first, is this key
/// descending (ties by id descending: the id's text sorts as the id).
pub(super) fn updated_key(updated_at: Timestamp, chat: ChatId) -> String {
    format!("{}#{chat}", sortable_micros(updated_at.timestamp_micros()))
}

/// `text` cut into pieces of at most [`PIECE_BYTES`], at character boundaries.
pub(super) fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(text.len() / PIECE_BYTES + 1);
    let mut rest = text;
    while rest.len() > PIECE_BYTES {
        let mut cut = PIECE_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out.push(rest);
    out
}

fn get<'a>(item: &'a Item, name: &str) -> Result<&'a AttributeValue, StoreError> {
    item.get(name)
        .ok_or_else(|| malformed(BACKEND, format!("item has no {name}")))
}

pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    get(item, name)?
        .as_s()
        .map(String::as_str)
        .map_err(|_| malformed(BACKEND, format!("{name} is not a string")))
}

pub(super) fn opt_s(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub(super) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    get(item, name)?
        .as_n()
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| malformed(BACKEND, format!("{name} is not a number of the right kind")))
}

fn get_time(item: &Item, name: &str) -> Result<Timestamp, StoreError> {
    from_micros(BACKEND, get_n(item, name)?)
}

pub(super) fn get_usage(item: &Item) -> Result<Option<Usage>, StoreError> {
    if !item.contains_key("in") {
        return Ok(None);
    }
    Ok(Some(Usage {
        input_tokens: get_n(item, "in")?,
        output_tokens: get_n(item, "out")?,
        total_tokens: get_n(item, "total")?,
        // Absent when 0, and on items from before they were kept.
        cache_read_tokens: opt_n(item, "cache_read")?,
        cache_write_tokens: opt_n(item, "cache_write")?,
    }))
}

/// A number that is 0 when absent.
fn opt_n(item: &Item, name: &str) -> Result<u64, StoreError> {
    if item.contains_key(name) {
        get_n(item, name)
    } else {
        Ok(0)
    }
}

/// A ledger count: sums of `u64`s may pass `u64::MAX` in DynamoDB's 38 digits; they
/// saturate rather than fail to read. Missing is 0.
pub(super) fn get_sum(item: &Item, name: &str) -> Result<u64, StoreError> {
    if !item.contains_key(name) {
        return Ok(0);
    }
    let sum: u128 = get_n(item, name)?;
    Ok(u64::try_from(sum).unwrap_or(u64::MAX))
}

/// The day a usage bucket is for.
pub(super) fn get_day(item: &Item) -> Result<NaiveDate, StoreError> {
    let days: i32 = get_n(item, "day")?;
    NaiveDate::from_num_days_from_ce_opt(days)
        .ok_or_else(|| malformed(BACKEND, format!("day {days} is not a date")))
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| malformed(BACKEND, format!("{what} {text:?} does not parse")))
}

/// A new conversation's item, already holding the first `messages` appended with it.
pub(super) fn new_conversation_item(
    user: &UserId,
    new: &NewConversation,
    now: Timestamp,
    messages: &[NewMessage],
) -> Item {
    let mut item = conversation_key(user, new.id);
    item.extend([
        ("chat".to_owned(), s(new.id.to_string())),
        ("user".to_owned(), s(user.as_str())),
        ("title".to_owned(), s(new.title.clone())),
        ("meta".to_owned(), s(metadata_to_json(&new.metadata))),
        ("count".to_owned(), n(messages.len())),
        ("last_seq".to_owned(), n(messages.len())),
        ("created".to_owned(), n(now.timestamp_micros())),
        ("updated".to_owned(), n(now.timestamp_micros())),
        (UPDATED_KEY.to_owned(), s(updated_key(now, new.id))),
    ]);
    if let Some(prompt) = &new.system_prompt {
        item.insert("prompt".to_owned(), s(prompt.clone()));
    }
    item
}

pub(super) fn conversation_from(item: &Item) -> Result<Conversation, StoreError> {
    Ok(Conversation {
        id: parse(get_s(item, "chat")?, "chat id")?,
        user_id: UserId::new(get_s(item, "user")?)
            .map_err(|e| malformed(BACKEND, e.to_string()))?,
        title: get_s(item, "title")?.to_owned(),
        system_prompt: opt_s(item, "prompt"),
        metadata: metadata_from_json(BACKEND, get_s(item, "meta")?)?,
        message_count: get_n(item, "count")?,
        created_at: get_time(item, "created")?,
        updated_at: get_time(item, "updated")?,
    })
}

/// A message's item (holding the first piece of its text, and its parts when they fit)
/// and its further pieces of text and of parts.
pub(super) fn message_items(
    user: &UserId,
    chat: ChatId,
    seq: u64,
    message: &NewMessage,
    now: Timestamp,
) -> Result<(Item, Vec<Item>), StoreError> {
    let layout = PartsLayout::of(&message.content, &message.parts)?;
    let parts = pieces(&message.content);
    let mut item = message_key(chat, seq);
    item.extend([
        ("id".to_owned(), s(message.id.to_string())),
        ("chat".to_owned(), s(chat.to_string())),
        ("user".to_owned(), s(user.as_str())),
        ("seq".to_owned(), n(seq)),
        ("role".to_owned(), s(message.role.as_str())),
        ("content".to_owned(), s(parts[0])),
        ("pieces".to_owned(), n(parts.len() - 1)),
        ("meta".to_owned(), s(metadata_to_json(&message.metadata))),
        ("created".to_owned(), n(now.timestamp_micros())),
        ("updated".to_owned(), n(now.timestamp_micros())),
    ]);
    if let Some(reply_to) = message.reply_to {
        item.insert("reply_to".to_owned(), s(reply_to.to_string()));
    }
    if let Some(model) = &message.model {
        item.insert("model".to_owned(), s(model.clone()));
    }
    if let Some(usage) = message.usage {
        item.insert("in".to_owned(), n(usage.input_tokens));
        item.insert("out".to_owned(), n(usage.output_tokens));
        item.insert("total".to_owned(), n(usage.total_tokens));
        if usage.cache_read_tokens != 0 {
            item.insert("cache_read".to_owned(), n(usage.cache_read_tokens));
        }
        if usage.cache_write_tokens != 0 {
            item.insert("cache_write".to_owned(), n(usage.cache_write_tokens));
        }
    }
    layout.apply(&mut item);
    let mut extra = piece_items(chat, seq, &parts[1..]);
    extra.extend(layout.piece_items(chat, seq));
    Ok((item, extra))
}

/// Items for the pieces of a message's text after the first.
pub(super) fn piece_items(chat: ChatId, seq: u64, rest: &[&str]) -> Vec<Item> {
    rest.iter()
        .enumerate()
        .map(|(i, text)| {
            let mut item = piece_key(chat, seq, i + 1);
            item.insert("data".to_owned(), s(*text));
            item
        })
        .collect()
}

pub(super) fn index_item(user: &UserId, chat: ChatId, seq: u64, id: MessageId) -> Item {
    let mut item = index_key(user, id);
    item.extend([
        ("id".to_owned(), s(id.to_string())),
        ("chat".to_owned(), s(chat.to_string())),
        ("user".to_owned(), s(user.as_str())),
        ("seq".to_owned(), n(seq)),
    ]);
    item
}

/// Where an index item points.
pub(super) struct Location {
    pub(super) id: MessageId,
    pub(super) chat: ChatId,
    pub(super) user: String,
    pub(super) seq: u64,
}

pub(super) fn location_from(item: &Item) -> Result<Location, StoreError> {
    Ok(Location {
        id: parse(get_s(item, "id")?, "message id")?,
        chat: parse(get_s(item, "chat")?, "chat id")?,
        user: get_s(item, "user")?.to_owned(),
        seq: get_n(item, "seq")?,
    })
}

/// How many pieces after the first a message item says it has.
pub(super) fn piece_count(item: &Item) -> Result<usize, StoreError> {
    get_n(item, "pieces")
}

/// A message from its item, the text of its further pieces, and the pieces of its parts,
/// in order.
pub(super) fn message_from(
    item: &Item,
    rest: &[String],
    parts_pieces: &[String],
) -> Result<Message, StoreError> {
    let role = get_s(item, "role")?;
    let mut content = get_s(item, "content")?.to_owned();
    for piece in rest {
        content.push_str(piece);
    }
    let parts = match (opt_s(item, "parts"), parts_pieces) {
        (Some(inline), _) => parts_from_json(BACKEND, Some(&inline))?,
        (None, []) => Vec::new(),
        (None, pieces) => parts_from_json(BACKEND, Some(&pieces.concat()))?,
    };
    Ok(Message {
        id: parse(get_s(item, "id")?, "message id")?,
        chat_id: parse(get_s(item, "chat")?, "chat id")?,
        seq: get_n(item, "seq")?,
        role: Role::parse(role).ok_or_else(|| malformed(BACKEND, format!("role {role:?}")))?,
        content,
        parts,
        reply_to: opt_s(item, "reply_to")
            .map(|r| parse(&r, "reply_to"))
            .transpose()?,
        model: opt_s(item, "model"),
        usage: get_usage(item)?,
        metadata: metadata_from_json(BACKEND, get_s(item, "meta")?)?,
        created_at: get_time(item, "created")?,
        updated_at: get_time(item, "updated")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_micros_sort_as_numbers() {
        let values = [-5_000_000_i64, -1, 0, 1, 1_700_000_000_000_000, i64::MAX];
        let keys: Vec<String> = values.iter().map(|v| sortable_micros(*v)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn day_keys_sort_as_days() {
        let days = [
            (1, 1, 1),
            (1999, 12, 31),
            (2024, 2, 29),
            (2025, 1, 1),
            (9999, 12, 31),
        ];
        let keys: Vec<String> = days
            .iter()
            .filter_map(|(y, m, d)| NaiveDate::from_ymd_opt(*y, *m, *d))
            .map(day_sk)
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys.len(), days.len());
        assert_eq!(keys, sorted);
    }

    #[test]
    fn pieces_cut_at_character_boundaries_and_rejoin() {
        let text = "é🦀".repeat(PIECE_BYTES / 3);
        let parts = pieces(&text);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.len() <= PIECE_BYTES));
        assert_eq!(parts.concat(), text);
        assert_eq!(pieces(""), vec![""]);
    }
}
