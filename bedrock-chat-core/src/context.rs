//! The context window: which stored messages go to the model with a new message.

use std::fmt;

use crate::model::ModelMessage;
use crate::parts::{DocumentFormat, ImageFormat, Part};
use crate::types::{Message, Role};

/// Estimates how many tokens a text costs, to keep a context window within budget
/// before the model sees it.
pub trait TokenEstimator: Send + Sync + fmt::Debug + 'static {
    /// An estimate of the tokens in `text`.
    fn estimate(&self, text: &str) -> u64;
}

/// Bedrock's published estimate for an image (Anthropic's: width × height / 750), with
/// the image scaled to fit the 1568-pixel edge the models resize to, so at most about
/// 1,600 tokens. An image whose size cannot be read counts as the most.
pub fn image_tokens(bytes: Option<&[u8]>) -> u64 {
    const MAX_EDGE: f64 = 1568.0;
    const MAX_TOKENS: u64 = 1_600;
    let Some((width, height)) = bytes.and_then(ImageFormat::dimensions) else {
        return MAX_TOKENS;
    };
    let (w, h) = (width as f64, height as f64);
    let scale = (MAX_EDGE / w.max(h)).min(1.0);
    (((w * scale) * (h * scale) / 750.0).ceil() as u64).clamp(1, MAX_TOKENS)
}

/// An estimate for a document: 1,500 tokens a page for a PDF (pages counted from its page
/// objects), the text estimate for text formats, and one token per four bytes otherwise.
pub fn document_tokens(
    format: DocumentFormat,
    bytes: Option<&[u8]>,
    size: u64,
    estimator: &dyn TokenEstimator,
) -> u64 {
    match (format, bytes) {
        (DocumentFormat::Pdf, Some(bytes)) => {
            let pages = count_pdf_pages(bytes).max(1);
            pages.saturating_mul(1_500)
        }
        (format, Some(bytes)) if format.is_text() => {
            estimator.estimate(&String::from_utf8_lossy(bytes))
        }
        _ => size.div_ceil(4),
    }
}

/// `/Type /Page` objects (not `/Pages`) in a PDF.
fn count_pdf_pages(bytes: &[u8]) -> u64 {
    let mut pages = 0;
    let mut rest = bytes;
    while let Some(at) = find(rest, b"/Type") {
        rest = &rest[at + 5..];
        let trimmed = rest
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let after = &rest[trimmed..];
        if after.starts_with(b"/Page") && !after.starts_with(b"/Pages") {
            pages += 1;
        }
    }
    pages
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The estimated tokens of a message: its text, and for a message with parts, each
/// attachment, tool call and result and reasoning too.
pub fn estimate_message(estimator: &dyn TokenEstimator, content: &str, parts: &[Part]) -> u64 {
    parts
        .iter()
        .fold(estimator.estimate(content), |tokens, part| {
            tokens.saturating_add(part_tokens(estimator, part))
        })
}

/// The estimated tokens of a part other than text (text parts count in the message's
/// `content`, so 0 here).
pub fn part_tokens(estimator: &dyn TokenEstimator, part: &Part) -> u64 {
    match part {
        Part::Text { .. } => 0,
        Part::Image { source, .. } => image_tokens(source.bytes().map(|b| &b[..])),
        Part::Document { format, source, .. } => document_tokens(
            *format,
            source.bytes().map(|b| &b[..]),
            source.len(),
            estimator,
        ),
        Part::ToolUse { name, input, .. } => {
            estimator.estimate(name) + estimator.estimate(&input.to_string())
        }
        Part::ToolResult { output, .. } => estimator.estimate(&output.to_string()),
        Part::Reasoning { text, .. } => estimator.estimate(text),
        Part::RedactedReasoning { data } => data.len().div_ceil(4),
    }
}

/// The metadata key under which a stored question keeps its exact token count: the count
/// the model made of it (with
/// [`ChatPolicy::exact_token_counts`](crate::ChatPolicy::exact_token_counts)).
pub const TOKENS_METADATA: &str = "tokens";

/// A stored message's exact token count, when it has one: a question's
/// [`TOKENS_METADATA`], a reply's output tokens as the model reported them (its
/// [`usage`](Message::usage)).
pub fn stored_tokens(message: &Message) -> Option<u64> {
    if let Some(tokens) = message.metadata.get(TOKENS_METADATA) {
        return tokens.as_u64();
    }
    match message.role {
        // A model that reported no output tokens says nothing about the reply's size.
        Role::Assistant => message
            .usage
            .map(|usage| usage.output_tokens)
            .filter(|&tokens| tokens > 0),
        Role::User => None,
    }
}

/// A stored message as a context window needs it: its place, role, text, parts and exact
/// token count, without the rest of a [`Message`] (ids, model, usage, metadata, times).
/// [`HistoryStore::recent_context`](crate::HistoryStore::recent_context) reads these.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ContextMessage {
    /// Its place in the conversation.
    pub seq: u64,
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
    /// Its parts, when it is more than text.
    pub parts: Vec<Part>,
    /// Its exact token count, when it keeps one ([`stored_tokens`]).
    pub tokens: Option<u64>,
}

impl ContextMessage {
    /// What the context window needs of `message`, copied.
    pub fn of(message: &Message) -> Self {
        Self {
            seq: message.seq,
            role: message.role,
            content: message.content.clone(),
            parts: message.parts.clone(),
            tokens: stored_tokens(message),
        }
    }
}

impl From<Message> for ContextMessage {
    fn from(message: Message) -> Self {
        let tokens = stored_tokens(&message);
        Self {
            seq: message.seq,
            role: message.role,
            content: message.content,
            parts: message.parts,
            tokens,
        }
    }
}

/// The default estimate: one token per `chars_per_token` characters, rounded up, plus a
/// fixed overhead per message for role markers. Close to Claude's and Nova's tokenizers on
/// English prose (about four characters a token); conservative on code and CJK text only
/// if `chars_per_token` is lowered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CharRatioEstimator {
    /// Characters per token.
    pub chars_per_token: f64,
    /// Tokens added for every message.
    pub per_message_overhead: u64,
}

impl Default for CharRatioEstimator {
    fn default() -> Self {
        Self {
            chars_per_token: 4.0,
            per_message_overhead: 4,
        }
    }
}

impl TokenEstimator for CharRatioEstimator {
    fn estimate(&self, text: &str) -> u64 {
        let chars = text.chars().count() as f64;
        let ratio = if self.chars_per_token > 0.0 {
            self.chars_per_token
        } else {
            1.0
        };
        (chars / ratio).ceil() as u64 + self.per_message_overhead
    }
}

/// The turns to send to the model, and their estimated size.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContextWindow {
    /// Starts with a user turn, roles alternate, ends with the new message.
    pub messages: Vec<ModelMessage>,
    /// The estimated tokens of the history kept and the new message.
    pub estimated_tokens: u64,
}

/// Drops the oldest of `history` (a conversation's newest messages, oldest first) so that
/// the window's start moves in steps of `stride` messages rather than one exchange a turn:
/// the messages kept are those after the last multiple of `stride` at or past
/// `newest seq - max_messages`. With `stride` 1 (or 0) nothing is dropped.
///
/// A window that slides by one exchange a turn changes its oldest message every turn, so
/// a cached prompt prefix never matches twice; one that moves in strides keeps the same
/// start for `stride / 2` turns, and the prompt cache serves the history in between. The
/// window then holds from `max_messages - stride + 1` to `max_messages` messages.
///
/// ```
/// use bedrock_chat_core::context::{align_window, ContextMessage};
/// # use bedrock_chat_core::{ChatId, Message, MessageId, Metadata, Role};
/// # fn msg(seq: u64) -> ContextMessage {
/// #     let now = chrono::Utc::now();
/// #     Message { id: MessageId::new(), chat_id: ChatId::new(), seq, role: Role::User,
/// #         content: String::new(), parts: vec![], reply_to: None, model: None, usage: None,
/// #         metadata: Metadata::new(), created_at: now, updated_at: now }.into()
/// # }
/// // Messages 13..=32 (a 20-message window), stride 10: the window starts after 20.
/// let mut history: Vec<ContextMessage> = (13..=32).map(msg).collect();
/// align_window(&mut history, 20, 10);
/// assert_eq!(history.first().map(|m| m.seq), Some(21));
/// ```
pub fn align_window(history: &mut Vec<ContextMessage>, max_messages: usize, stride: u32) {
    let stride = u64::from(stride);
    let Some(newest) = history.last().map(|m| m.seq) else {
        return;
    };
    if stride <= 1 {
        return;
    }
    let cutoff = newest.saturating_sub(max_messages as u64).div_ceil(stride) * stride;
    history.retain(|m| m.seq > cutoff);
}

/// Builds the turns to send: as many of the newest `history` messages as fit in
/// `max_messages` and `max_tokens` (the new message always goes), then `new_message`.
///
/// The result is always valid for Bedrock's Converse API: it starts with a user turn,
/// roles alternate, no turn is empty. Stored history can break that (a deleted reply, an
/// edited message); consecutive turns of one role are then joined, and a leading assistant
/// turn is dropped. History is taken by value so its text and parts move into the turns.
/// A message that keeps its exact token count ([`ContextMessage::tokens`]) costs that;
/// others are estimated, those with parts counting their attachments by
/// [`estimate_message`].
pub fn build_context(
    history: Vec<ContextMessage>,
    new_message: ModelMessage,
    max_messages: usize,
    max_tokens: u64,
    estimator: &dyn TokenEstimator,
) -> ContextWindow {
    let new_cost = estimate_message(estimator, &new_message.content, &new_message.parts);
    let mut budget = max_tokens.saturating_sub(new_cost);
    let mut kept = 0;
    for message in history.iter().rev().take(max_messages) {
        let cost = message
            .tokens
            .unwrap_or_else(|| estimate_message(estimator, &message.content, &message.parts));
        if cost > budget {
            break;
        }
        budget -= cost;
        kept += 1;
    }
    let estimated_tokens = max_tokens.saturating_sub(budget).max(new_cost);
    let skip = history.len() - kept;

    let mut turns: Vec<ModelMessage> = Vec::with_capacity(kept + 1);
    let mut push = |turn: ModelMessage| {
        // A window that starts mid-reply: its answer, or tool results whose calls are cut
        // off, cannot open the conversation.
        let cut_off = turns.is_empty()
            && (turn.role == Role::Assistant || crate::tool::has_tool_parts(&turn.parts));
        if !turn.is_blank() && !cut_off {
            ModelMessage::push_joined(&mut turns, turn);
        }
    };
    for message in history.into_iter().skip(skip) {
        let turn = ModelMessage {
            role: message.role,
            content: message.content,
            parts: message.parts,
        };
        // A reply that called tools is its rounds: calls, results (a user turn), and on.
        if crate::tool::has_tool_parts(&turn.parts) {
            crate::tool::split_tool_rounds(turn)
                .into_iter()
                .for_each(&mut push);
        } else {
            push(turn);
        }
    }
    push(new_message);
    ContextWindow {
        messages: turns,
        estimated_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ChatId, MessageId};
    use crate::types::Metadata;
    use chrono::Utc;

    fn msg(seq: u64, role: Role, content: &str) -> ContextMessage {
        Message {
            id: MessageId::new(),
            chat_id: ChatId::new(),
            seq,
            role,
            content: content.into(),
            parts: Vec::new(),
            reply_to: None,
            model: None,
            usage: None,
            metadata: Metadata::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
        .into()
    }

    fn roles(turns: &[ModelMessage]) -> Vec<Role> {
        turns.iter().map(|t| t.role).collect()
    }

    #[test]
    fn keeps_newest_messages_within_count() {
        let history: Vec<_> = (1..=6)
            .map(|i| {
                let role = if i % 2 == 1 {
                    Role::User
                } else {
                    Role::Assistant
                };
                msg(i, role, &format!("m{i}"))
            })
            .collect();
        let turns = build_context(
            history,
            ModelMessage::user("new"),
            4,
            10_000,
            &CharRatioEstimator::default(),
        )
        .messages;
        let texts: Vec<_> = turns.iter().map(|t| t.content.as_str()).collect();
        assert_eq!(texts, ["m3", "m4", "m5", "m6", "new"]);
        assert_eq!(turns.first().map(|t| t.role), Some(Role::User));
    }

    #[test]
    fn drops_a_leading_assistant_turn_and_joins_same_roles() {
        let history = vec![
            msg(2, Role::Assistant, "orphan reply"),
            msg(3, Role::User, "q1"),
            msg(5, Role::User, "q2 (its reply was deleted)"),
        ];
        let turns = build_context(
            history,
            ModelMessage::user("q3"),
            10,
            10_000,
            &CharRatioEstimator::default(),
        )
        .messages;
        assert_eq!(roles(&turns), [Role::User]);
        assert_eq!(turns[0].content, "q1\n\nq2 (its reply was deleted)\n\nq3");
    }

    #[test]
    fn token_budget_cuts_oldest_first_but_keeps_the_new_message() {
        let est = CharRatioEstimator::default();
        let history = vec![
            msg(1, Role::User, &"a".repeat(400)),
            msg(2, Role::Assistant, &"b".repeat(400)),
            msg(3, Role::User, "short"),
            msg(4, Role::Assistant, "short"),
        ];
        let window = build_context(
            history.clone(),
            ModelMessage::user("n".repeat(40)),
            10,
            40,
            &est,
        );
        assert_eq!(
            roles(&window.messages),
            [Role::User, Role::Assistant, Role::User]
        );
        // 14 for the new message, 6 for each short one kept.
        assert_eq!(window.estimated_tokens, 26);
        let tiny = build_context(history, ModelMessage::user("n".repeat(4000)), 10, 5, &est);
        assert_eq!(tiny.messages.len(), 1);
        assert_eq!(tiny.estimated_tokens, 1004);
    }

    #[test]
    fn a_strided_window_keeps_its_start_for_several_turns() {
        let conversation = |newest: u64| -> Vec<ContextMessage> {
            (newest.saturating_sub(19).max(1)..=newest)
                .map(|seq| {
                    let role = if seq % 2 == 1 {
                        Role::User
                    } else {
                        Role::Assistant
                    };
                    msg(seq, role, "m")
                })
                .collect()
        };
        let starts: Vec<u64> = [20, 22, 24, 26, 28, 30, 32]
            .iter()
            .map(|&newest| {
                let mut history = conversation(newest);
                align_window(&mut history, 20, 10);
                history[0].seq
            })
            .collect();
        // Not full yet, then a start that moves every five turns, on a user message.
        assert_eq!(starts, [1, 11, 11, 11, 11, 11, 21]);
        let mut unchanged = conversation(32);
        align_window(&mut unchanged, 20, 1);
        assert_eq!(unchanged.len(), 20);
    }

    #[test]
    fn empty_turns_are_skipped() {
        let history = vec![msg(1, Role::User, "hi"), msg(2, Role::Assistant, "  ")];
        let turns = build_context(
            history,
            ModelMessage::user("again"),
            10,
            1000,
            &CharRatioEstimator::default(),
        )
        .messages;
        assert_eq!(turns, vec![ModelMessage::user("hi\n\nagain")]);
    }
}
