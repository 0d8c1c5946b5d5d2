//! What the scripts return, back as domain types.

use bedrock_chat_core::{
    ChatId, Conversation, DailyUsage, Message, MessageId, Role, StoreError, Usage, UserId,
};
use serde::{Deserialize, Serialize};

use super::BACKEND;
use crate::codec::{from_micros, malformed, metadata_from_json, parts_from_json};

/// A script's answer: a status word and rows of fields (a missing field is `None`).
pub(super) type Reply = (String, Vec<Vec<Option<String>>>);

/// The parts of a message that never change, stored as one JSON value.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Header {
    pub(super) role: Role,
    pub(super) reply_to: Option<MessageId>,
    pub(super) model: Option<String>,
    pub(super) usage: Option<Usage>,
    pub(super) created_at: i64,
}

/// The member of a conversation in its user's list: the time of its last change
/// ([`activity_digits`]), then the id.
pub(super) fn list_member(updated_micros: i64, id: ChatId) -> String {
    format!("{}:{id}", activity_digits(updated_micros))
}

/// A time as 20 digits that sort like the time (the sign bit flipped, so earlier times
/// sort first even before 1970): how a user's list orders conversations. Every script
/// gets `now` this way as its last argument.
pub(super) fn activity_digits(micros: i64) -> String {
    let ordered = (micros as u64) ^ (1 << 63);
    format!("{ordered:020}")
}

fn field<'a>(row: &'a [Option<String>], i: usize, what: &str) -> Result<&'a str, StoreError> {
    row.get(i)
        .and_then(Option::as_deref)
        .ok_or_else(|| malformed(BACKEND, format!("{what} is missing")))
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| malformed(BACKEND, format!("{what} {text:?} does not parse")))
}

/// `[id, user, title, prompt, meta, count, created, updated]`.
pub(super) fn conversation(row: &[Option<String>]) -> Result<Conversation, StoreError> {
    Ok(Conversation {
        id: parse::<ChatId>(field(row, 0, "conversation id")?, "conversation id")?,
        user_id: UserId::new(field(row, 1, "user")?)
            .map_err(|e| malformed(BACKEND, format!("user id: {e}")))?,
        title: field(row, 2, "title")?.to_owned(),
        system_prompt: row.get(3).cloned().flatten(),
        metadata: metadata_from_json(BACKEND, field(row, 4, "metadata")?)?,
        message_count: parse(field(row, 5, "count")?, "count")?,
        created_at: from_micros(BACKEND, parse(field(row, 6, "created")?, "created")?)?,
        updated_at: from_micros(BACKEND, parse(field(row, 7, "updated")?, "updated")?)?,
    })
}

/// `[id, chat, seq, header, content, meta, updated, parts]` (parts nil for a plain-text
/// message, and for one stored before parts were kept).
pub(super) fn message(row: &[Option<String>]) -> Result<Message, StoreError> {
    let header: Header = serde_json::from_str(field(row, 3, "header")?)
        .map_err(|e| malformed(BACKEND, format!("message header: {e}")))?;
    Ok(Message {
        id: parse::<MessageId>(field(row, 0, "message id")?, "message id")?,
        chat_id: parse::<ChatId>(field(row, 1, "conversation id")?, "conversation id")?,
        seq: parse(field(row, 2, "seq")?, "seq")?,
        role: header.role,
        content: field(row, 4, "content")?.to_owned(),
        parts: parts_from_json(BACKEND, row.get(7).and_then(Option::as_deref))?,
        reply_to: header.reply_to,
        model: header.model,
        usage: header.usage,
        metadata: metadata_from_json(BACKEND, field(row, 5, "metadata")?)?,
        created_at: from_micros(BACKEND, header.created_at)?,
        updated_at: from_micros(BACKEND, parse(field(row, 6, "updated")?, "updated")?)?,
    })
}

/// `[day, in, out, total, calls, cache read, cache write]`: one day of the usage ledger.
pub(super) fn daily_usage(row: &[Option<String>]) -> Result<DailyUsage, StoreError> {
    Ok(DailyUsage {
        day: parse(field(row, 0, "day")?, "day")?,
        usage: Usage {
            input_tokens: count(row, 1)?,
            output_tokens: count(row, 2)?,
            total_tokens: count(row, 3)?,
            cache_read_tokens: count(row, 5)?,
            cache_write_tokens: count(row, 6)?,
        },
        calls: count(row, 4)?,
    })
}

/// A number from a usage row; a field never set is 0.
pub(super) fn count(row: &[Option<String>], i: usize) -> Result<u64, StoreError> {
    match row.get(i).and_then(Option::as_deref) {
        None => Ok(0),
        Some(text) => {
            parse::<i64>(text, "count").and_then(|n| crate::codec::to_u64(BACKEND, n, "count"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_members_sort_like_their_times() {
        let id = ChatId::new();
        let times = [-5_000_000, -1, 0, 1, 1_700_000_000_000_000, i64::MAX];
        let members: Vec<String> = times.iter().map(|t| list_member(*t, id)).collect();
        let mut sorted = members.clone();
        sorted.sort();
        assert_eq!(members, sorted);
        assert!(members.iter().all(|m| m.len() == 21 + 36));
    }
}
