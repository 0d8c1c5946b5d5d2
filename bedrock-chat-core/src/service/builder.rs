//! Building a [`ChatService`]: its parts and its [`ChatPolicy`].

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use super::{AttachmentLimits, ChatService, Inner};
use crate::blob::BlobStore;
use crate::context::{CharRatioEstimator, TokenEstimator};
use crate::limiter::RateLimiter;
use crate::model::{ChatModel, GuardrailConfig, InferenceConfig};
use crate::store::HistoryStore;
use crate::tool::Tool;

/// The rules a [`ChatService`] applies to every send.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ChatPolicy {
    /// At most this many stored messages go to the model with a new one.
    pub context_messages: u32,
    /// At most this many estimated tokens of history and new message go to the model.
    pub context_tokens: u64,
    /// The context window's start moves in steps of this many messages (1: by one message,
    /// the newest `context_messages` always go). A stride keeps the history's cached prompt
    /// prefix the same for `stride / 2` turns of a long conversation, at the price of a
    /// window of `context_messages - stride + 1` messages at times; see
    /// [`align_window`](crate::context::align_window). Use an even stride, so that a window
    /// starts with a question.
    pub context_stride: u32,
    /// The longest message accepted, in characters.
    pub max_message_chars: usize,
    /// The longest system prompt accepted, in characters.
    pub max_system_prompt_chars: usize,
    /// Sampling settings for every call; a send may override them.
    pub inference: InferenceConfig,
    /// The system prompt when neither the send nor the conversation has one.
    pub system_prompt: Option<String>,
    /// A guardrail applied to every call.
    pub guardrail: Option<GuardrailConfig>,
    /// A streamed reply that sends nothing for this long has failed.
    pub stream_idle_timeout: Duration,
    /// New conversations are titled with this many characters of their first message.
    pub title_chars: usize,
    /// Whether audit events carry the user's message text (off by default: logs then hold
    /// no conversation content).
    pub audit_message_text: bool,
    /// What a send may attach (by default, Bedrock's own limits).
    pub attachments: AttachmentLimits,
    /// With a blob store, at most this many attachment bytes stay in a stored message; the
    /// rest go to the blob store (64 KiB by default, well inside DynamoDB's 400 KB item).
    pub inline_attachment_bytes: u64,
    /// Whether sends ask the model to cache the stable prefix of a conversation (on by
    /// default; a model that cannot cache ignores it).
    pub prompt_caching: bool,
    /// With tools registered, the model may ask for tool calls in at most this many rounds
    /// of a send (5 by default); calls it asks for after that get an error result and
    /// the model one last call to answer with what it has.
    pub max_tool_rounds: u32,
    /// A tool call that takes longer than this (30 s by default) is abandoned, and the
    /// model told so in an error result.
    pub tool_timeout: Duration,
    /// Whether each new message is counted by the model (Bedrock's CountTokens, one free
    /// call before the model's), its exact count kept in its metadata (`tokens`) so that
    /// later context windows are sized by it instead of by estimate. Off by default (the
    /// count adds a round trip); replies always keep the output tokens the model reported.
    pub exact_token_counts: bool,
}

impl Default for ChatPolicy {
    fn default() -> Self {
        Self {
            context_messages: 20,
            context_tokens: 12_000,
            context_stride: 1,
            max_message_chars: 100_000,
            max_system_prompt_chars: 20_000,
            inference: InferenceConfig::default(),
            system_prompt: None,
            guardrail: None,
            stream_idle_timeout: Duration::from_secs(120),
            title_chars: 60,
            audit_message_text: false,
            attachments: AttachmentLimits::default(),
            inline_attachment_bytes: 64 * 1024,
            prompt_caching: true,
            max_tool_rounds: 5,
            tool_timeout: Duration::from_secs(30),
            exact_token_counts: false,
        }
    }
}

impl ChatPolicy {
    /// Sets how many stored messages and estimated tokens the context window holds.
    pub fn with_context_window(mut self, messages: u32, tokens: u64) -> Self {
        self.context_messages = messages;
        self.context_tokens = tokens;
        self
    }

    /// Sets the context window's stride (see [`context_stride`](Self::context_stride)).
    pub fn with_context_stride(mut self, messages: u32) -> Self {
        self.context_stride = messages.max(1);
        self
    }

    /// Sets the longest message accepted, in characters.
    pub fn with_max_message_chars(mut self, chars: usize) -> Self {
        self.max_message_chars = chars;
        self
    }

    /// Sets the default sampling settings.
    pub fn with_inference(mut self, inference: InferenceConfig) -> Self {
        self.inference = inference;
        self
    }

    /// Sets the default system prompt.
    pub fn with_system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = Some(prompt.into());
        self
    }

    /// Sets the guardrail for every call.
    pub fn with_guardrail(mut self, guardrail: GuardrailConfig) -> Self {
        self.guardrail = Some(guardrail);
        self
    }

    /// Sets whether audit events carry the user's message text.
    pub fn with_audit_message_text(mut self, on: bool) -> Self {
        self.audit_message_text = on;
        self
    }

    /// Sets the longest system prompt accepted, in characters.
    pub fn with_max_system_prompt_chars(mut self, chars: usize) -> Self {
        self.max_system_prompt_chars = chars;
        self
    }

    /// Sets what a send may attach.
    pub fn with_attachment_limits(mut self, limits: AttachmentLimits) -> Self {
        self.attachments = limits;
        self
    }

    /// Sets how many attachment bytes a stored message keeps when there is a blob store.
    pub fn with_inline_attachment_bytes(mut self, bytes: u64) -> Self {
        self.inline_attachment_bytes = bytes;
        self
    }

    /// Sets whether sends ask the model to cache the conversation's stable prefix.
    pub fn with_prompt_caching(mut self, on: bool) -> Self {
        self.prompt_caching = on;
        self
    }

    /// Sets how many rounds of tool calls a send may make and how long one call may take.
    pub fn with_tool_limits(mut self, max_rounds: u32, timeout: Duration) -> Self {
        self.max_tool_rounds = max_rounds;
        self.tool_timeout = timeout;
        self
    }

    /// Sets [`exact_token_counts`](Self::exact_token_counts).
    pub fn with_exact_token_counts(mut self, on: bool) -> Self {
        self.exact_token_counts = on;
        self
    }

    /// Sets how long a streamed reply may be silent before it fails.
    pub fn with_stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.stream_idle_timeout = timeout;
        self
    }
}

/// Step-by-step construction of a [`ChatService`]; see [`ChatService::builder`].
#[must_use]
pub struct ChatServiceBuilder {
    model: Arc<dyn ChatModel>,
    store: Arc<dyn HistoryStore>,
    request_limiter: Option<Arc<dyn RateLimiter>>,
    token_budget: Option<Arc<dyn RateLimiter>>,
    estimator: Arc<dyn TokenEstimator>,
    blobs: Option<Arc<dyn BlobStore>>,
    tools: Vec<Arc<dyn Tool>>,
    policy: ChatPolicy,
}

impl ChatServiceBuilder {
    pub(super) fn new(model: Arc<dyn ChatModel>, store: Arc<dyn HistoryStore>) -> Self {
        Self {
            model,
            store,
            request_limiter: None,
            token_budget: None,
            estimator: Arc::new(CharRatioEstimator::default()),
            blobs: None,
            tools: Vec::new(),
            policy: ChatPolicy::default(),
        }
    }

    /// Limits requests: every send costs 1 of the caller's key.
    pub fn request_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.request_limiter = Some(limiter);
        self
    }

    /// Limits tokens: a send is refused once the caller's budget is spent, and each reply's
    /// real usage is charged after it arrives (so one reply may overdraw it).
    pub fn token_budget(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.token_budget = Some(limiter);
        self
    }

    /// Replaces the token estimator used for the context window.
    pub fn token_estimator(mut self, estimator: Arc<dyn TokenEstimator>) -> Self {
        self.estimator = estimator;
        self
    }

    /// Keeps large attachments in `blobs` instead of in the history store (see
    /// [`ChatPolicy::inline_attachment_bytes`]); deleting a conversation or message through
    /// the service deletes its blobs too.
    pub fn blob_store(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// Offers `tool` to the model on every send; the service runs the calls the model asks
    /// for (see [`crate::tool`]). A tool registered under a name already taken replaces
    /// the earlier one.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use async_trait::async_trait;
    /// use bedrock_chat_core::tool::{Tool, ToolContext, ToolError};
    /// use bedrock_chat_core::{ChatService, OfflineChatModel, Part, SendRequest, UserId};
    /// use bedrock_chat_store::InMemoryHistoryStore;
    /// use serde_json::{json, Value};
    ///
    /// struct Dice;
    ///
    /// #[async_trait]
    /// impl Tool for Dice {
    ///     fn name(&self) -> &str { "roll_dice" }
    ///     fn description(&self) -> &str { "Rolls a six-sided die." }
    ///     fn input_schema(&self) -> Value { json!({"type": "object"}) }
    ///     async fn call(&self, _: &ToolContext, _: Value) -> Result<Value, ToolError> {
    ///         Ok(json!({"rolled": 4}))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let service = ChatService::builder(
    ///     Arc::new(OfflineChatModel::new()),
    ///     Arc::new(InMemoryHistoryStore::new()),
    /// )
    /// .tool(Arc::new(Dice))
    /// .build();
    /// // The offline model calls a tool whose name the question mentions.
    /// let reply = service.send(SendRequest::new(UserId::new("ada")?, "Roll dice!")).await?;
    /// assert!(matches!(&reply.answer.parts[0], Part::ToolUse { name, .. } if name == "roll_dice"));
    /// assert!(reply.text().contains(r#"{"rolled":4}"#));
    /// # Ok(()) }
    /// ```
    pub fn tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.retain(|t| t.name() != tool.name());
        self.tools.push(tool);
        self
    }

    /// Sets the policy.
    pub fn policy(mut self, policy: ChatPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The service.
    pub fn build(self) -> ChatService {
        ChatService {
            inner: Arc::new(Inner {
                model: self.model,
                store: self.store,
                request_limiter: self.request_limiter,
                token_budget: self.token_budget,
                estimator: self.estimator,
                blobs: self.blobs,
                tools: super::rounds::Toolbox::new(self.tools),
                policy: self.policy,
                tasks: TaskTracker::new(),
            }),
        }
    }
}
