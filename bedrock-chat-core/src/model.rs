//! The [`ChatModel`] trait: one call to a model, plain or streamed.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::citation::Citation;
use crate::error::ModelError;
use crate::ids::{ChatId, UserId};
use crate::parts::Part;
use crate::tool::{ToolCall, ToolSpec};
use crate::types::{Role, Usage};

/// Sampling settings (Bedrock's `inferenceConfig`); `None` leaves the model's default.
///
/// Built with [`new`](Self::new) and `with_*` setters, so that a new setting breaks no
/// caller:
///
/// ```
/// use bedrock_chat_core::InferenceConfig;
/// let inference = InferenceConfig::new().with_max_tokens(512).with_temperature(0.2);
/// assert_eq!(inference.max_tokens, Some(512));
/// assert_eq!(inference.top_p, None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InferenceConfig {
    /// The most tokens the reply may have.
    pub max_tokens: Option<u32>,
    /// Randomness, 0 to 1.
    pub temperature: Option<f32>,
    /// Nucleus sampling, 0 to 1.
    pub top_p: Option<f32>,
    /// Text that ends the reply when the model writes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    /// Tokens the model may spend reasoning before it answers (extended thinking); `None`
    /// asks for no reasoning.
    ///
    /// [`BedrockChatModel`](crate) sends it to Anthropic Claude models (Claude 3.7 Sonnet
    /// and the Claude 4 family take it) as `additionalModelRequestFields.thinking`, after
    /// checking Bedrock's rules: at least 1,024 tokens, less than
    /// [`max_tokens`](Self::max_tokens) when that is set, and neither
    /// [`temperature`](Self::temperature) nor [`top_p`](Self::top_p) set. Other model
    /// families are not mapped yet: they get no reasoning field and answer without
    /// reasoning. The [`OfflineChatModel`](crate::OfflineChatModel) reasons briefly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_budget: Option<u32>,
    /// Bedrock's service tier for the call (`None`: the account's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
    /// `Some(true)` asks for Bedrock's latency-optimised inference (on the models and
    /// Regions that offer it); `None` and `Some(false)` for standard inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_optimized: Option<bool>,
    /// Model-specific request fields (a JSON object), sent as Bedrock's
    /// `additionalModelRequestFields` (say `{"top_k": 40}` for Claude). A
    /// [`reasoning_budget`](Self::reasoning_budget) adds its own `thinking` field to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_fields: Option<serde_json::Value>,
    /// `Some(true)` asks the model to cite the conversation's documents: the answer's
    /// text parts then carry [`Citation`]s (see
    /// [`crate::citation`]). [`BedrockChatModel`](crate) turns citations on for every
    /// document of the request on the models that cite (see
    /// `bedrock::supports_citations`) and sends the documents as before to the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citations: Option<bool>,
}

/// A Bedrock service tier: how a call is scheduled and priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ServiceTier {
    /// Standard on-demand capacity.
    Default,
    /// Cheaper, for work that can wait.
    Flex,
    /// Faster, at a premium.
    Priority,
    /// Capacity reserved for the account.
    Reserved,
}

impl ServiceTier {
    /// Bedrock's name for it (`default`, `flex`, `priority`, `reserved`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Flex => "flex",
            Self::Priority => "priority",
            Self::Reserved => "reserved",
        }
    }
}

impl std::str::FromStr for ServiceTier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(Self::Default),
            "flex" => Ok(Self::Flex),
            "priority" => Ok(Self::Priority),
            "reserved" => Ok(Self::Reserved),
            other => Err(format!(
                "`{other}` is not a service tier: default, flex, priority or reserved"
            )),
        }
    }
}

impl InferenceConfig {
    /// Every setting left to the model's default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`max_tokens`](Self::max_tokens).
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets [`temperature`](Self::temperature).
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets [`top_p`](Self::top_p).
    pub fn with_top_p(mut self, top_p: f32) -> Self {
        self.top_p = Some(top_p);
        self
    }

    /// Sets [`stop_sequences`](Self::stop_sequences).
    pub fn with_stop_sequences<S: Into<String>>(
        mut self,
        stop_sequences: impl IntoIterator<Item = S>,
    ) -> Self {
        self.stop_sequences = stop_sequences.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`reasoning_budget`](Self::reasoning_budget): the model reasons, with up to
    /// `tokens` tokens, before it answers.
    ///
    /// ```
    /// use bedrock_chat_core::InferenceConfig;
    /// let inference = InferenceConfig::new().with_max_tokens(4096).with_reasoning_budget(2048);
    /// assert_eq!(inference.reasoning_budget, Some(2048));
    /// ```
    pub fn with_reasoning_budget(mut self, tokens: u32) -> Self {
        self.reasoning_budget = Some(tokens);
        self
    }

    /// Sets [`service_tier`](Self::service_tier).
    pub fn with_service_tier(mut self, tier: ServiceTier) -> Self {
        self.service_tier = Some(tier);
        self
    }

    /// Sets [`citations`](Self::citations).
    ///
    /// ```
    /// use bedrock_chat_core::InferenceConfig;
    /// assert_eq!(InferenceConfig::new().with_citations(true).citations, Some(true));
    /// ```
    pub fn with_citations(mut self, on: bool) -> Self {
        self.citations = Some(on);
        self
    }

    /// Whether [`citations`](Self::citations) are asked for.
    pub fn wants_citations(&self) -> bool {
        self.citations == Some(true)
    }

    /// Sets [`latency_optimized`](Self::latency_optimized).
    pub fn with_latency_optimized(mut self, on: bool) -> Self {
        self.latency_optimized = Some(on);
        self
    }

    /// Sets [`additional_fields`](Self::additional_fields).
    ///
    /// ```
    /// use bedrock_chat_core::InferenceConfig;
    /// let inference = InferenceConfig::new().with_additional_fields(serde_json::json!({"top_k": 40}));
    /// assert_eq!(inference.additional_fields.unwrap()["top_k"], 40);
    /// ```
    pub fn with_additional_fields(mut self, fields: serde_json::Value) -> Self {
        self.additional_fields = Some(fields);
        self
    }

    /// `self` with every field that `over` sets taken from `over`.
    pub fn overridden_by(&self, over: &InferenceConfig) -> InferenceConfig {
        InferenceConfig {
            max_tokens: over.max_tokens.or(self.max_tokens),
            temperature: over.temperature.or(self.temperature),
            top_p: over.top_p.or(self.top_p),
            stop_sequences: if over.stop_sequences.is_empty() {
                self.stop_sequences.clone()
            } else {
                over.stop_sequences.clone()
            },
            reasoning_budget: over.reasoning_budget.or(self.reasoning_budget),
            service_tier: over.service_tier.or(self.service_tier),
            latency_optimized: over.latency_optimized.or(self.latency_optimized),
            additional_fields: over
                .additional_fields
                .clone()
                .or_else(|| self.additional_fields.clone()),
            citations: over.citations.or(self.citations),
        }
    }
}

/// How a guardrail screens a streamed reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardrailStreamMode {
    /// Screen each chunk before it is sent (slower first token).
    Sync,
    /// Send chunks at once and screen them in the background.
    Async,
}

/// A Bedrock Guardrail to apply to a call.
///
/// ```
/// use bedrock_chat_core::{GuardrailConfig, GuardrailStreamMode};
/// let guardrail = GuardrailConfig::new("gr-123", "DRAFT")
///     .with_trace(true)
///     .with_stream_mode(GuardrailStreamMode::Async);
/// assert_eq!(guardrail.version, "DRAFT");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GuardrailConfig {
    /// The guardrail's id or ARN.
    pub identifier: String,
    /// Its version (`"DRAFT"` or a number).
    pub version: String,
    /// Whether to return the guardrail's trace.
    pub trace: bool,
    /// For streamed calls: how chunks are screened.
    pub stream_mode: Option<GuardrailStreamMode>,
}

impl GuardrailConfig {
    /// The guardrail `identifier` (id or ARN) at `version` (`"DRAFT"` or a number); no
    /// trace, the service's default stream mode.
    pub fn new(identifier: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            identifier: identifier.into(),
            version: version.into(),
            trace: false,
            stream_mode: None,
        }
    }

    /// Sets [`trace`](Self::trace).
    pub fn with_trace(mut self, trace: bool) -> Self {
        self.trace = trace;
        self
    }

    /// Sets [`stream_mode`](Self::stream_mode).
    pub fn with_stream_mode(mut self, mode: GuardrailStreamMode) -> Self {
        self.stream_mode = Some(mode);
        self
    }
}

/// Structured output: the model must answer with JSON matching `schema`.
/// [`BedrockChatModel`](crate) asks for it natively (Bedrock's `outputConfig`) where the
/// model takes that (see `bedrock::supports_native_structured_output`), and otherwise forces
/// a call of a tool whose input schema is `schema`; the caller sees the same
/// [`ModelResponse::structured`] either way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputSchema {
    /// A name for the output (the tool's name): letters, digits, `_` and `-`.
    pub name: String,
    /// What the output is; the model reads this.
    pub description: String,
    /// A JSON Schema (an object schema).
    pub schema: serde_json::Value,
}

/// One turn sent to the model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelMessage {
    /// Who said it.
    pub role: Role,
    /// What was said; with [`parts`](Self::parts), the text of its text parts.
    pub content: String,
    /// The whole turn in order when it holds more than text (see
    /// [`Message::parts`](crate::Message::parts)); empty for a text-only turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
}

impl ModelMessage {
    /// A user turn.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
            parts: Vec::new(),
        }
    }

    /// An assistant turn.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
            parts: Vec::new(),
        }
    }

    /// Sets the turn's parts; `content` becomes the text of its text parts.
    pub fn with_parts(mut self, parts: Vec<Part>) -> Self {
        self.content = crate::parts::text_of(&parts);
        self.parts = parts;
        self
    }

    /// The turn as parts: [`parts`](Self::parts), or one text part holding `content`.
    pub fn content_parts(&self) -> std::borrow::Cow<'_, [Part]> {
        crate::parts::content_parts(&self.content, &self.parts)
    }

    /// `true` when the turn says nothing: blank text and no part but text. Converse
    /// refuses such a turn.
    pub(crate) fn is_blank(&self) -> bool {
        self.content.trim().is_empty() && self.parts.iter().all(|p| p.as_text().is_some())
    }

    /// Adds `turn` after `turns`, joined to the last one when they share a role (Converse
    /// wants the roles to alternate).
    pub(crate) fn push_joined(turns: &mut Vec<ModelMessage>, turn: ModelMessage) {
        match turns.last_mut() {
            Some(last) if last.role == turn.role => last.join(turn),
            _ => turns.push(turn),
        }
    }

    /// Appends `next` (a turn of the same role) to this one: text joined by a blank line,
    /// parts concatenated.
    pub(crate) fn join(&mut self, next: ModelMessage) {
        if self.parts.is_empty() && next.parts.is_empty() {
            self.content.push_str("\n\n");
            self.content.push_str(&next.content);
            return;
        }
        let mut parts = std::mem::take(&mut self.parts);
        if parts.is_empty() {
            parts.push(Part::text(std::mem::take(&mut self.content)));
        }
        match next.parts.is_empty() {
            true => parts.push(Part::text(next.content)),
            false => parts.extend(next.parts),
        }
        *self = ModelMessage {
            role: self.role,
            content: String::new(),
            parts: Vec::new(),
        }
        .with_parts(parts);
    }
}

/// Who and what a model call is for: [`BedrockChatModel`](crate) sends it as Converse's
/// `requestMetadata` (`user_id`, `chat_id`, `request_id`), which Bedrock writes to its model
/// invocation logs, to find a user's or a conversation's calls there. Characters Bedrock
/// does not take in them are replaced by `_`, and values cut to 256 characters.
///
/// ```
/// use bedrock_chat_core::{RequestMetadata, UserId};
/// let metadata = RequestMetadata::for_user(UserId::new("ada").unwrap()).with_request_id("r-1");
/// assert_eq!(
///     metadata.pairs(),
///     [("user_id", "ada".to_owned()), ("request_id", "r-1".to_owned())]
/// );
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestMetadata {
    /// The user the call is for.
    pub user_id: Option<UserId>,
    /// The conversation, when there is one.
    pub chat_id: Option<ChatId>,
    /// The host's request id, when it gave one.
    pub request_id: Option<String>,
}

impl RequestMetadata {
    /// A call for `user`.
    pub fn for_user(user: UserId) -> Self {
        Self {
            user_id: Some(user),
            ..Self::default()
        }
    }

    /// Sets [`chat_id`](Self::chat_id).
    pub fn with_chat(mut self, chat_id: ChatId) -> Self {
        self.chat_id = Some(chat_id);
        self
    }

    /// Sets [`request_id`](Self::request_id).
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// The key-value pairs of what is set, in that order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            self.user_id
                .as_ref()
                .map(|u| ("user_id", u.as_str().to_owned())),
            self.chat_id.map(|c| ("chat_id", c.to_string())),
            self.request_id.clone().map(|r| ("request_id", r)),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// `true` when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.user_id.is_none() && self.chat_id.is_none() && self.request_id.is_none()
    }
}

/// Everything one model call needs.
///
/// ```
/// use bedrock_chat_core::{InferenceConfig, ModelMessage, ModelRequest};
/// let request = ModelRequest::new([ModelMessage::user("Hello")])
///     .with_system("Answer briefly.")
///     .with_inference(InferenceConfig::new().with_max_tokens(256));
/// assert_eq!(request.messages.len(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ModelRequest {
    /// The system prompt.
    pub system: Option<String>,
    /// The conversation: starts with a user turn, roles alternate, ends with a user turn.
    pub messages: Vec<ModelMessage>,
    /// Sampling settings.
    pub inference: InferenceConfig,
    /// A guardrail to apply.
    pub guardrail: Option<GuardrailConfig>,
    /// Structured output to force.
    pub output_schema: Option<OutputSchema>,
    /// Tools the model may call ([`ModelResponse::tool_calls`] holds the calls it makes).
    /// When the conversation holds tool calls and results but no tool is offered, they go
    /// to the model as text.
    pub tools: Vec<ToolSpec>,
    /// Who and what the call is for, which Bedrock writes to its model invocation logs
    /// with it; [`ChatService`](crate::ChatService) sets it.
    pub request_metadata: RequestMetadata,
    /// Ask the model to cache the stable prefix of the call (the system prompt, and the
    /// turns before the last one), so that the next turn of the conversation reads it from
    /// the cache at a fraction of the price. A model that cannot cache ignores it.
    pub prompt_caching: bool,
}

impl ModelRequest {
    /// A call with `messages`, no system prompt, the model's default sampling, no
    /// guardrail and no structured output.
    pub fn new(messages: impl Into<Vec<ModelMessage>>) -> Self {
        Self {
            messages: messages.into(),
            ..Self::default()
        }
    }

    /// Sets [`system`](Self::system).
    pub fn with_system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// Sets [`inference`](Self::inference).
    pub fn with_inference(mut self, inference: InferenceConfig) -> Self {
        self.inference = inference;
        self
    }

    /// Sets [`guardrail`](Self::guardrail).
    pub fn with_guardrail(mut self, guardrail: GuardrailConfig) -> Self {
        self.guardrail = Some(guardrail);
        self
    }

    /// Sets [`output_schema`](Self::output_schema).
    pub fn with_output_schema(mut self, schema: OutputSchema) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// Sets [`tools`](Self::tools).
    pub fn with_tools(mut self, tools: impl Into<Vec<ToolSpec>>) -> Self {
        self.tools = tools.into();
        self
    }

    /// Sets [`prompt_caching`](Self::prompt_caching).
    pub fn with_prompt_caching(mut self, on: bool) -> Self {
        self.prompt_caching = on;
        self
    }
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StopReason {
    /// It finished its answer.
    EndTurn,
    /// It reached `max_tokens`.
    MaxTokens,
    /// It wrote a stop sequence.
    StopSequence,
    /// It called a tool (structured output, or one of the request's tools).
    ToolUse,
    /// A guardrail intervened.
    GuardrailIntervened,
    /// Content filters stopped it.
    ContentFiltered,
    /// The conversation and the reply no longer fit the model's context window.
    ModelContextWindowExceeded,
    /// The model asked for a tool call whose input is not valid JSON.
    MalformedToolUse,
    /// A reason this library does not know yet, as the service named it.
    Other(String),
}

impl StopReason {
    /// The name Bedrock uses (`end_turn`, `max_tokens`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            Self::EndTurn => "end_turn",
            Self::MaxTokens => "max_tokens",
            Self::StopSequence => "stop_sequence",
            Self::ToolUse => "tool_use",
            Self::GuardrailIntervened => "guardrail_intervened",
            Self::ContentFiltered => "content_filtered",
            Self::ModelContextWindowExceeded => "model_context_window_exceeded",
            Self::MalformedToolUse => "malformed_tool_use",
            Self::Other(s) => s,
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Self {
        match s {
            "end_turn" => Self::EndTurn,
            "max_tokens" => Self::MaxTokens,
            "stop_sequence" => Self::StopSequence,
            "tool_use" => Self::ToolUse,
            "guardrail_intervened" => Self::GuardrailIntervened,
            "content_filtered" => Self::ContentFiltered,
            "model_context_window_exceeded" => Self::ModelContextWindowExceeded,
            "malformed_tool_use" => Self::MalformedToolUse,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// A whole reply.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelResponse {
    /// The text.
    pub text: String,
    /// The model's reasoning before its answer, in order: [`Part::Reasoning`] (with the
    /// signature that must go back with it on the next turn) and
    /// [`Part::RedactedReasoning`] parts. Empty when the model did not reason.
    pub reasoning: Vec<Part>,
    /// For structured output: the JSON the model produced.
    pub structured: Option<serde_json::Value>,
    /// The tools the model asks to call (of [`ModelRequest::tools`]), in order; the
    /// stop reason is then [`StopReason::ToolUse`].
    pub tool_calls: Vec<ToolCall>,
    /// Which spans of `text` rest on which passages of the request's documents (when
    /// [`InferenceConfig::citations`] asked for them), in order.
    pub citations: Vec<Citation>,
    /// Tokens used.
    pub usage: Usage,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// How long the call took, as the service measured it when it says.
    pub latency: Duration,
}

/// One event of a streamed reply. A complete stream is the reasoning, if the model
/// reasons (`ReasoningDelta`s, each block of them closed by a `ReasoningSignature`, or a
/// `RedactedReasoning`), then any number of `TextDelta`s, then any `ToolCall`s, then `Stop`, with `Usage`
/// somewhere after the last delta; a stream that ends without `Stop` broke off.
///
/// New kinds of event may be added: a `match` needs a `_` arm, and a consumer ignores
/// events it does not know.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ModelEvent {
    /// The next piece of text.
    TextDelta(String),
    /// The next piece of the model's reasoning (see
    /// [`InferenceConfig::reasoning_budget`]).
    ReasoningDelta(String),
    /// The signature of the reasoning streamed since the last signature: it ends a block of
    /// reasoning, and goes back with it on the next turn.
    ReasoningSignature(String),
    /// A block of reasoning the provider encrypted: kept and sent back, never shown.
    RedactedReasoning(bytes::Bytes),
    /// A complete call of one of [`ModelRequest::tools`], after any text before it.
    ToolCall(ToolCall),
    /// The text streamed so far rests on a passage of a document: the citation's span
    /// counts characters of the call's text (all its `TextDelta`s), and ends at or before
    /// the text streamed when it comes (see [`InferenceConfig::citations`]).
    Citation(Citation),
    /// Why the model stopped; the text is complete.
    Stop(StopReason),
    /// Tokens used by the whole call.
    Usage(Usage),
}

/// A streamed reply: events, or the error that ended it.
pub type ModelStream = BoxStream<'static, Result<ModelEvent, ModelError>>;

/// A chat model: Bedrock through [`BedrockChatModel`](crate) (feature `bedrock`), the
/// [`OfflineChatModel`](crate::OfflineChatModel), or your own.
///
/// Implementations classify their failures into [`ModelError`] and retry what is worth
/// retrying before they give up.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ChatModel: Send + Sync + 'static {
    /// The model id, as reported to clients and stored with replies.
    fn model_id(&self) -> &str;

    /// One call; the whole reply at once.
    ///
    /// # Errors
    /// A [`ModelError`] saying what kind of failure happened.
    async fn converse(&self, request: ModelRequest) -> Result<ModelResponse, ModelError>;

    /// One call; the reply as a stream of events. Errors before the first event are
    /// returned here; errors after it end the stream.
    ///
    /// # Errors
    /// A [`ModelError`] saying what kind of failure happened.
    async fn converse_stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError>;

    /// The exact input tokens of `request` as the model counts them (Bedrock's CountTokens
    /// operation, which costs nothing), or `None` when the model cannot count (the default;
    /// callers then estimate).
    ///
    /// # Errors
    /// A [`ModelError`] when the count was asked for and failed.
    async fn count_tokens(&self, request: &ModelRequest) -> Result<Option<u64>, ModelError> {
        let _ = request;
        Ok(None)
    }

    /// Checks that the model can take calls, for readiness probes, without spending
    /// tokens. The default answers `Ok` at once (nothing to check, or nothing known to
    /// check cheaply); a backend overrides it when it can tell, say, missing credentials.
    ///
    /// # Errors
    /// A [`ModelError`] saying why the model cannot take calls now.
    async fn ready(&self) -> Result<(), ModelError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_model_that_does_not_override_ready_is_ready() {
        let model: &dyn ChatModel = &crate::OfflineChatModel::new();
        assert!(model.ready().await.is_ok());
    }
}
