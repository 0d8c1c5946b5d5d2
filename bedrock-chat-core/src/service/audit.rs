//! The audit trail: one structured `tracing` event per model call, emitted here and
//! nowhere else, so every host logs the same fields.

use std::time::Duration;

use crate::error::ChatError;
use crate::ids::{ChatId, MessageId, UserId};
use crate::model::{RequestMetadata, StopReason};
use crate::types::Usage;

/// The `tracing` target of audit events: one event per model call. Route it to its own
/// sink with a target filter (`bedrock_chat::audit=info`).
pub const AUDIT_TARGET: &str = "bedrock_chat::audit";

/// Which service call made a model call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Send,
    Stream,
    Stateless,
    Structured,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Stream => "stream",
            Self::Stateless => "stateless",
            Self::Structured => "structured",
        }
    }
}

/// Who made a call and how to find it again: what every audit event names.
#[derive(Clone, Debug)]
pub(crate) struct CallMeta {
    pub(crate) user: UserId,
    pub(crate) operation: Operation,
    /// The host's request id, when it gave one.
    pub(crate) request_id: Option<String>,
    /// The key the request limit counts against.
    pub(crate) rate_key: String,
    /// The key the token budget counts against.
    pub(crate) budget_key: String,
    /// The user's message, logged only when the policy says so.
    pub(crate) message: Option<String>,
}

impl CallMeta {
    /// What Bedrock's invocation logs are told about the call: the user, the
    /// conversation when there is one, the host's request id when it gave one.
    pub(crate) fn invocation_metadata(&self, chat_id: Option<ChatId>) -> RequestMetadata {
        RequestMetadata {
            user_id: Some(self.user.clone()),
            chat_id,
            request_id: self.request_id.clone(),
        }
    }
}

/// How a model call ended.
pub(crate) enum Outcome<'a> {
    Ok {
        usage: Usage,
        stop_reason: &'a StopReason,
        /// `true` when the exchange was stored already (a retry raced the first send).
        replayed: bool,
        /// Characters of reasoning the model wrote (its text is never logged).
        reasoning_chars: usize,
    },
    Failed {
        error: &'a ChatError,
        /// Characters streamed before the failure; they are not stored.
        partial_chars: usize,
        /// Characters of reasoning streamed before the failure; not stored either.
        reasoning_chars: usize,
    },
}

/// Emits the audit event of one model call.
pub(crate) fn model_call(
    meta: &CallMeta,
    model: &str,
    chat_id: Option<ChatId>,
    message_uid: Option<MessageId>,
    latency: Duration,
    outcome: Outcome<'_>,
) {
    let chat_id = chat_id.map(tracing::field::display);
    let message_uid = message_uid.map(tracing::field::display);
    let latency_ms = latency.as_millis() as u64;
    let message = meta.message.as_deref();
    match outcome {
        Outcome::Ok {
            usage,
            stop_reason,
            replayed,
            reasoning_chars,
        } => tracing::info!(
            target: AUDIT_TARGET,
            operation = meta.operation.as_str(),
            user = %meta.user,
            request_id = meta.request_id.as_deref(),
            rate_key = %meta.rate_key,
            chat_id,
            message_uid,
            model,
            input_tokens = usage.input_tokens,
            output_tokens = usage.output_tokens,
            total_tokens = usage.total_tokens,
            cache_read_tokens = usage.cache_read_tokens,
            cache_write_tokens = usage.cache_write_tokens,
            latency_ms,
            stop_reason = stop_reason.as_str(),
            replayed,
            reasoning_chars,
            outcome = "ok",
            message,
            "model call"
        ),
        Outcome::Failed {
            error,
            partial_chars,
            reasoning_chars,
        } => tracing::warn!(
            target: AUDIT_TARGET,
            operation = meta.operation.as_str(),
            user = %meta.user,
            request_id = meta.request_id.as_deref(),
            rate_key = %meta.rate_key,
            chat_id,
            message_uid,
            model,
            latency_ms,
            partial_chars,
            reasoning_chars,
            outcome = "error",
            error = %error,
            retryable = error.is_retryable(),
            message,
            "model call failed; nothing stored"
        ),
    }
}
