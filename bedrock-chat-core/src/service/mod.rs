//! [`ChatService`]: a model, a history store and limiters composed into one send.

mod attachments;
mod audit;
mod builder;
mod oneshot;
mod rounds;
mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::task::TaskTracker;

pub use attachments::{document_name, AttachmentLimits};
pub use audit::AUDIT_TARGET;
pub use builder::{ChatPolicy, ChatServiceBuilder};
pub use oneshot::{Persona, PersonaReply, StatelessReply, StructuredReply};
pub use stream::{ChatStream, StreamEvent};

use audit::{CallMeta, Operation, Outcome};

use crate::blob::{self, BlobStore};
use crate::context::{align_window, build_context, TokenEstimator, TOKENS_METADATA};
use crate::error::{ChatError, InvalidInput, ModelError, StoreError};
use crate::ids::{ChatId, MessageId, UserId};
use crate::limiter::{Decision, RateLimiter};
use crate::model::{
    ChatModel, GuardrailConfig, InferenceConfig, ModelMessage, ModelRequest, StopReason,
};
use crate::parts::Part;
use crate::store::{AppendRequest, AppendTarget, HistoryStore};
use crate::types::{Message, Metadata, NewConversation, NewMessage, Role, Usage};

/// One message to send, and who sends it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SendRequest {
    /// The sender; the conversation must be theirs.
    pub user: UserId,
    /// The message text.
    pub message: String,
    /// Images and documents sent with the message ([`Part::Image`], [`Part::Document`]),
    /// checked against [`ChatPolicy::attachments`].
    pub attachments: Vec<Part>,
    /// The conversation to continue; `None` starts a new one.
    pub chat_id: Option<ChatId>,
    /// The message's id (the idempotency key): a retry with the same id returns the stored
    /// exchange without calling the model again. `None` makes a fresh one.
    pub message_uid: Option<MessageId>,
    /// A system prompt for this send (and, for a new conversation, for the ones after).
    pub system_prompt: Option<String>,
    /// Sampling settings over the policy's.
    pub inference: Option<InferenceConfig>,
    /// The rate-limit key; `None` uses the user id (use the client IP for anonymous users).
    pub rate_key: Option<String>,
    /// The token-budget key; `None` uses the rate-limit key. Set it to budget a caller per
    /// identity while limiting requests per client IP.
    pub budget_key: Option<String>,
    /// A guardrail for this call, over the policy's.
    pub guardrail: Option<GuardrailConfig>,
    /// The host's id of the request (an HTTP request id), carried into the audit event.
    pub request_id: Option<String>,
    /// Metadata stored with the user's message.
    pub metadata: Metadata,
}

impl SendRequest {
    /// `message` from `user`, starting a new conversation.
    pub fn new(user: UserId, message: impl Into<String>) -> Self {
        Self {
            user,
            message: message.into(),
            attachments: Vec::new(),
            chat_id: None,
            message_uid: None,
            system_prompt: None,
            inference: None,
            rate_key: None,
            budget_key: None,
            guardrail: None,
            request_id: None,
            metadata: Metadata::new(),
        }
    }

    /// Attaches an image or a document ([`Part::image`], [`Part::document`]).
    ///
    /// ```
    /// use bedrock_chat_core::{DocumentFormat, Part, SendRequest, UserId};
    /// let request = SendRequest::new(UserId::new("alice").unwrap(), "Summarise this")
    ///     .with_attachment(Part::document(DocumentFormat::Txt, "minutes", b"We met.".to_vec()));
    /// assert_eq!(request.attachments.len(), 1);
    /// ```
    pub fn with_attachment(mut self, attachment: Part) -> Self {
        self.attachments.push(attachment);
        self
    }

    /// Continues conversation `chat_id`.
    pub fn in_chat(mut self, chat_id: ChatId) -> Self {
        self.chat_id = Some(chat_id);
        self
    }

    /// Sets the message id (idempotency key).
    pub fn with_message_uid(mut self, id: MessageId) -> Self {
        self.message_uid = Some(id);
        self
    }

    /// Sets the system prompt.
    pub fn with_system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = Some(prompt.into());
        self
    }

    /// Sets sampling settings.
    pub fn with_inference(mut self, inference: InferenceConfig) -> Self {
        self.inference = Some(inference);
        self
    }

    /// Sets the rate-limit key.
    pub fn with_rate_key(mut self, key: impl Into<String>) -> Self {
        self.rate_key = Some(key.into());
        self
    }

    /// Sets the token-budget key (by default the rate-limit key).
    pub fn with_budget_key(mut self, key: impl Into<String>) -> Self {
        self.budget_key = Some(key.into());
        self
    }

    /// Applies `guardrail` to this call instead of the policy's.
    pub fn with_guardrail(mut self, guardrail: GuardrailConfig) -> Self {
        self.guardrail = Some(guardrail);
        self
    }

    /// Sets the request id that the audit event carries.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Sets the metadata stored with the message.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// The message as the model's newest turn: its attachments first (as Bedrock
    /// recommends), then its text.
    fn model_turn(&self) -> ModelMessage {
        if self.attachments.is_empty() {
            return ModelMessage::user(self.message.clone());
        }
        let mut parts = self.attachments.clone();
        parts.push(Part::text(self.message.clone()));
        ModelMessage::user(String::new()).with_parts(parts)
    }

    /// The audit facts of this request, its keys defaulted.
    fn call_meta(&self, operation: Operation, log_message: bool) -> CallMeta {
        let rate_key = self
            .rate_key
            .clone()
            .unwrap_or_else(|| self.user.as_str().to_owned());
        CallMeta {
            user: self.user.clone(),
            operation,
            request_id: self.request_id.clone(),
            budget_key: self.budget_key.clone().unwrap_or_else(|| rate_key.clone()),
            rate_key,
            message: log_message.then(|| self.message.clone()),
        }
    }
}

/// A stored exchange: the user's message and the model's reply.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ChatReply {
    /// The conversation.
    pub chat_id: ChatId,
    /// The user message's id.
    pub message_uid: MessageId,
    /// The reply's id.
    pub response_session_id: MessageId,
    /// The user's message as stored.
    pub question: Message,
    /// The reply as stored.
    pub answer: Message,
    /// The model that answered.
    pub model: String,
    /// Tokens the call used.
    pub usage: Usage,
    /// Why the model stopped, when known.
    pub stop_reason: Option<StopReason>,
    /// `true` when this exchange was stored by an earlier send with the same
    /// `message_uid` and the model was not called again.
    pub replayed: bool,
    /// `true` when this send started the conversation.
    pub new_conversation: bool,
    /// The request limiter's decision, when one is configured and was consulted.
    pub rate_limit: Option<Decision>,
}

impl ChatReply {
    /// The reply's text.
    pub fn text(&self) -> &str {
        &self.answer.content
    }

    /// The model's reasoning before the reply (asked for with
    /// [`InferenceConfig::reasoning_budget`]): the text of the reply's
    /// [`Part::Reasoning`] parts, blocks joined by a blank line. `None` when the model did
    /// not reason (or its reasoning was all redacted).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use bedrock_chat_core::{ChatService, InferenceConfig, OfflineChatModel, SendRequest, UserId};
    /// use bedrock_chat_store::InMemoryHistoryStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let service = ChatService::builder(
    ///     Arc::new(OfflineChatModel::new()),
    ///     Arc::new(InMemoryHistoryStore::new()),
    /// )
    /// .build();
    /// let request = SendRequest::new(UserId::new("ada")?, "Why is the sky blue?")
    ///     .with_inference(InferenceConfig::new().with_reasoning_budget(1024));
    /// let reply = service.send(request).await?;
    /// assert!(reply.reasoning().is_some_and(|r| r.starts_with("Reasoning (offline model)")));
    /// # Ok(()) }
    /// ```
    pub fn reasoning(&self) -> Option<String> {
        reasoning_text(&self.answer.parts)
    }

    /// The reply's citations, in order, each with the words of the reply it supports
    /// (empty unless [`InferenceConfig::citations`](crate::InferenceConfig::citations)
    /// asked for them and the model cited).
    pub fn citations(&self) -> Vec<(&str, &crate::citation::Citation)> {
        crate::citation::citations_of(&self.answer.parts)
    }

    fn from_messages(question: Message, answer: Message, replayed: bool) -> Self {
        let stop_reason = answer
            .metadata
            .get("stop_reason")
            .and_then(|v| v.as_str())
            .map(StopReason::parse);
        Self {
            chat_id: question.chat_id,
            message_uid: question.id,
            response_session_id: answer.id,
            model: answer.model.clone().unwrap_or_default(),
            usage: answer.usage.unwrap_or_default(),
            stop_reason,
            replayed,
            new_conversation: false,
            rate_limit: None,
            question,
            answer,
        }
    }
}

/// A model, a history store and (optionally) limiters, composed: the whole send flow.
///
/// One send: validate; return the stored exchange if `message_uid` is known; check the
/// token budget and the request limit; load the conversation's context window; call the
/// model; store question and reply in one atomic append; charge the tokens used. When the
/// model fails nothing is written, and a retry with the same `message_uid` works.
///
/// Cheap to clone: clones share everything.
///
/// ```
/// use std::sync::Arc;
/// use bedrock_chat_core::{ChatService, OfflineChatModel, SendRequest, UserId};
/// use bedrock_chat_store::InMemoryHistoryStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let service = ChatService::builder(
///     Arc::new(OfflineChatModel::new()),
///     Arc::new(InMemoryHistoryStore::new()),
/// )
/// .build();
/// let user = UserId::new("alice")?;
/// let first = service.send(SendRequest::new(user.clone(), "Hello!")).await?;
/// let second = service
///     .send(SendRequest::new(user, "And again").in_chat(first.chat_id))
///     .await?;
/// assert_eq!(second.answer.seq, 4);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ChatService {
    inner: Arc<Inner>,
}

struct Inner {
    model: Arc<dyn ChatModel>,
    store: Arc<dyn HistoryStore>,
    request_limiter: Option<Arc<dyn RateLimiter>>,
    token_budget: Option<Arc<dyn RateLimiter>>,
    estimator: Arc<dyn TokenEstimator>,
    blobs: Option<Arc<dyn BlobStore>>,
    tools: rounds::Toolbox,
    policy: ChatPolicy,
    tasks: TaskTracker,
}

impl std::fmt::Debug for ChatService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatService")
            .field("model", &self.inner.model.model_id())
            .field("store", &self.inner.store.backend())
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

/// A send that passed validation and limits, ready for the model.
struct Prepared {
    meta: CallMeta,
    target: AppendTarget,
    message_uid: MessageId,
    question: String,
    /// The question's parts (attachments, then its text), empty for plain text.
    question_parts: Vec<Part>,
    metadata: Metadata,
    /// The context's estimated input tokens, charged when a model reports no usage.
    estimated_input_tokens: u64,
    rate_limit: Option<Decision>,
}

// Lives only between `prepare` and the model call and is moved out at once; boxing the
// large variant would cost an allocation per send for nothing.
#[allow(clippy::large_enum_variant)]
enum Preparation {
    Replay(Box<ChatReply>),
    Call(Prepared, ModelRequest),
}

impl ChatService {
    /// Starts building a service from a model and a store.
    pub fn builder(model: Arc<dyn ChatModel>, store: Arc<dyn HistoryStore>) -> ChatServiceBuilder {
        ChatServiceBuilder::new(model, store)
    }

    /// The model.
    pub fn model(&self) -> &Arc<dyn ChatModel> {
        &self.inner.model
    }

    /// The history store, for listing, editing and deleting conversations.
    pub fn store(&self) -> &Arc<dyn HistoryStore> {
        &self.inner.store
    }

    /// The request limiter, if any.
    pub fn request_limiter(&self) -> Option<&Arc<dyn RateLimiter>> {
        self.inner.request_limiter.as_ref()
    }

    /// The token budget limiter, if any.
    pub fn token_budget(&self) -> Option<&Arc<dyn RateLimiter>> {
        self.inner.token_budget.as_ref()
    }

    /// The policy.
    pub fn policy(&self) -> &ChatPolicy {
        &self.inner.policy
    }

    /// Sends a message and waits for the whole reply.
    ///
    /// Dropping the returned future before it completes abandons the call and stores
    /// nothing; use [`send_stream`](Self::send_stream) for a reply that is kept even when
    /// the caller goes away.
    ///
    /// # Errors
    /// [`ChatError::InvalidInput`] for a bad message; [`ChatError::Store`] with
    /// `NotFound` for a conversation the user does not have; [`ChatError::RateLimited`] /
    /// [`ChatError::BudgetExhausted`] when over a limit; [`ChatError::Model`] when the
    /// model fails (nothing is stored then).
    pub async fn send(&self, request: SendRequest) -> Result<ChatReply, ChatError> {
        let (prepared, mut model_request) = match self.prepare(request, Operation::Send).await? {
            Preparation::Replay(reply) => return Ok(*reply),
            Preparation::Call(prepared, model_request) => (prepared, model_request),
        };
        let inner = &self.inner;
        let started = Instant::now();
        let mut exchange = rounds::Exchange::new(&model_request, prepared.estimated_input_tokens);
        loop {
            let call = inner.calls_request(&exchange, &mut model_request);
            let response = match inner.model.converse(call).await {
                Ok(response) => response,
                Err(ModelError::ContextOverflow { .. })
                    if exchange.retry_shorter(&mut model_request) =>
                {
                    continue
                }
                Err(error) => {
                    let error = ChatError::from(error);
                    inner
                        .failed(&prepared, &exchange, started.elapsed(), &error, 0, 0)
                        .await;
                    return Err(error);
                }
            };
            if response.stop_reason == StopReason::ModelContextWindowExceeded
                && exchange.retry_shorter(&mut model_request)
            {
                // The cut-off answer is dropped, but its tokens were spent.
                exchange.usage += response.usage;
                continue;
            }
            let round = rounds::Round::from(response);
            let next = inner
                .after_round(&mut exchange, round, &mut model_request, &prepared, None)
                .await;
            if let rounds::Next::Done(stop_reason) = next {
                return inner
                    .finish(prepared, exchange, stop_reason, started.elapsed())
                    .await;
            }
        }
    }

    /// Sends a message and streams the reply.
    ///
    /// Errors found before the model starts (bad input, unknown conversation, limits, a
    /// model that refuses at once) are returned here. After that, the reply is generated by
    /// a spawned task: it is stored when complete even if the returned stream is dropped,
    /// and a model failure mid-way ends the stream with [`StreamEvent::Failed`] and stores
    /// nothing.
    ///
    /// # Errors
    /// As [`send`](Self::send), for what fails before the first event.
    pub async fn send_stream(&self, request: SendRequest) -> Result<ChatStream, ChatError> {
        let (prepared, mut model_request) = match self.prepare(request, Operation::Stream).await? {
            Preparation::Replay(reply) => return Ok(ChatStream::replay(*reply)),
            Preparation::Call(prepared, model_request) => (prepared, model_request),
        };
        let started = Instant::now();
        let mut exchange = rounds::Exchange::new(&model_request, prepared.estimated_input_tokens);
        let opened = self
            .inner
            .open_stream(&mut exchange, &mut model_request)
            .await;
        let model_stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                let error = ChatError::from(error);
                self.inner
                    .failed(&prepared, &exchange, started.elapsed(), &error, 0, 0)
                    .await;
                return Err(error);
            }
        };
        Ok(stream::spawn_generation(
            Arc::clone(&self.inner),
            prepared,
            exchange,
            model_request,
            model_stream,
            started,
        ))
    }

    /// The blob store large attachments are kept in, if any.
    pub fn blob_store(&self) -> Option<&Arc<dyn BlobStore>> {
        self.inner.blobs.as_ref()
    }

    /// Deletes a conversation, its messages and its attachments in the blob store.
    ///
    /// The history goes first: once it is gone nothing refers to the blobs, and a blob
    /// store that fails then only leaves unreachable bytes behind (logged), never a message
    /// whose attachment is missing.
    ///
    /// # Errors
    /// As [`HistoryStore::delete_conversation`].
    pub async fn delete_conversation(
        &self,
        user: &UserId,
        chat_id: ChatId,
    ) -> Result<(), StoreError> {
        self.inner.store.delete_conversation(user, chat_id).await?;
        if let Some(blobs) = &self.inner.blobs {
            let prefix = blob::conversation_prefix(chat_id);
            if let Err(error) = blobs.delete_prefix(&prefix).await {
                tracing::error!(%chat_id, error = %error, "could not delete a conversation's attachments");
            }
        }
        Ok(())
    }

    /// Deletes a message and its attachments in the blob store (history first, as
    /// [`delete_conversation`](Self::delete_conversation) does).
    ///
    /// # Errors
    /// As [`HistoryStore::delete_message`].
    pub async fn delete_message(&self, user: &UserId, id: MessageId) -> Result<(), StoreError> {
        let blobs = match &self.inner.blobs {
            Some(blobs) => {
                let message = self.inner.store.get_message(user, id).await?;
                let has_blobs = message
                    .parts
                    .iter()
                    .any(|p| matches!(p.binary(), Some(crate::parts::Binary::Blob(_))));
                has_blobs.then_some((blobs, message.chat_id))
            }
            None => None,
        };
        self.inner.store.delete_message(user, id).await?;
        if let Some((blobs, chat_id)) = blobs {
            let prefix = format!("{}{id}/", blob::conversation_prefix(chat_id));
            if let Err(error) = blobs.delete_prefix(&prefix).await {
                tracing::error!(message_id = %id, error = %error, "could not delete a message's attachments");
            }
        }
        Ok(())
    }

    /// Part `index` of the user's message `id` with its bytes read back from the blob
    /// store: an attachment to download.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user has no such message or it has no such
    /// part (resource [`Attachment`](crate::Resource::Attachment)); the blob store's error
    /// when its bytes cannot be read.
    pub async fn message_part(
        &self,
        user: &UserId,
        id: MessageId,
        index: usize,
    ) -> Result<Part, StoreError> {
        let message = self.inner.store.get_message(user, id).await?;
        let mut part = message
            .parts
            .into_iter()
            .nth(index)
            .ok_or_else(|| StoreError::not_found(crate::Resource::Attachment))?;
        blob::resolve(self.inner.blobs.as_deref(), std::slice::from_mut(&mut part)).await?;
        Ok(part)
    }

    /// Waits until every streamed reply still being generated has been stored (or has
    /// failed). Call it on shutdown so that no reply in flight is lost.
    pub async fn shutdown(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.tasks.reopen();
    }

    /// How many streamed replies are being generated right now.
    pub fn in_flight(&self) -> usize {
        self.inner.tasks.len()
    }

    async fn prepare(
        &self,
        request: SendRequest,
        operation: Operation,
    ) -> Result<Preparation, ChatError> {
        let inner = &self.inner;
        let policy = &inner.policy;
        inner.validate(&request)?;

        if let Some(uid) = request.message_uid {
            if let Some(reply) = inner.stored_exchange(&request.user, uid).await? {
                return Ok(Preparation::Replay(Box::new(reply)));
            }
        }

        let meta = request.call_meta(operation, policy.audit_message_text);
        let rate_limit = inner.check_limits(&meta).await?;
        let mut metadata = request.metadata.clone();
        if policy.exact_token_counts && !metadata.contains_key(TOKENS_METADATA) {
            if let Some(tokens) = inner.count_tokens(&request).await {
                metadata.insert(TOKENS_METADATA.to_owned(), tokens.into());
            }
        }

        let (target, history, stored_prompt) = match request.chat_id {
            Some(chat_id) => {
                let conversation = inner.store.get_conversation(&request.user, chat_id).await?;
                let history = inner
                    .store
                    .recent_context(&request.user, chat_id, policy.context_messages)
                    .await?;
                (
                    AppendTarget::Existing(chat_id),
                    history,
                    conversation.system_prompt,
                )
            }
            None => {
                let mut new = NewConversation::new(title_of(&request.message, policy.title_chars));
                new.system_prompt = request.system_prompt.clone();
                (AppendTarget::CreateIfMissing(new), Vec::new(), None)
            }
        };

        let mut history = history;
        align_window(
            &mut history,
            policy.context_messages as usize,
            policy.context_stride,
        );
        let mut context = build_context(
            history,
            request.model_turn(),
            policy.context_messages as usize,
            policy.context_tokens,
            inner.estimator.as_ref(),
        );
        attachments::fit_attachments(&mut context.messages, &policy.attachments);
        for turn in &mut context.messages {
            blob::resolve(inner.blobs.as_deref(), &mut turn.parts).await?;
        }
        let question_parts = context
            .messages
            .last()
            .map(|turn| turn.parts.clone())
            .unwrap_or_default();
        let model_request = ModelRequest {
            system: request
                .system_prompt
                .clone()
                .or(stored_prompt)
                .or_else(|| policy.system_prompt.clone()),
            messages: context.messages,
            inference: inner.inference_for(&request),
            guardrail: request.guardrail.or_else(|| policy.guardrail.clone()),
            output_schema: None,
            tools: inner.tools.specs().to_vec(),
            request_metadata: meta.invocation_metadata(Some(target.chat_id())),
            prompt_caching: policy.prompt_caching,
        };
        let prepared = Prepared {
            meta,
            target,
            message_uid: request.message_uid.unwrap_or_default(),
            question: request.message,
            question_parts,
            metadata,
            estimated_input_tokens: context.estimated_tokens,
            rate_limit,
        };
        Ok(Preparation::Call(prepared, model_request))
    }
}

impl Inner {
    /// Checks what every send must satisfy: a message, within the policy's lengths.
    fn validate(&self, request: &SendRequest) -> Result<(), InvalidInput> {
        let policy = &self.policy;
        validate_text(&request.message, "message", policy.max_message_chars, true)?;
        policy.attachments.check(&request.attachments)?;
        if let Some(prompt) = &request.system_prompt {
            validate_text(
                prompt,
                "system_prompt",
                policy.max_system_prompt_chars,
                false,
            )?;
        }
        Ok(())
    }

    /// The model's exact count of a new message's tokens; `None` when the model cannot
    /// count or the count failed (the message is then estimated, as without counts).
    async fn count_tokens(&self, request: &SendRequest) -> Option<u64> {
        let turn = ModelRequest::new([request.model_turn()]);
        match self.model.count_tokens(&turn).await {
            Ok(count) => count,
            Err(error) => {
                tracing::debug!(error = %error, "could not count a message's tokens; estimating them");
                None
            }
        }
    }

    /// The sampling settings of a request: the policy's, overridden by the request's.
    fn inference_for(&self, request: &SendRequest) -> InferenceConfig {
        match &request.inference {
            Some(over) => self.policy.inference.overridden_by(over),
            None => self.policy.inference.clone(),
        }
    }

    /// The token budget check (it spends nothing, so a refusal there leaves the request
    /// count untouched), then the request limit. `Ok` carries the request limiter's
    /// decision.
    async fn check_limits(&self, meta: &CallMeta) -> Result<Option<Decision>, ChatError> {
        if let Some(budget) = &self.token_budget {
            let decision = budget.check(&meta.budget_key, 0).await?;
            if !decision.allowed {
                return Err(ChatError::BudgetExhausted(decision));
            }
        }
        let Some(limiter) = &self.request_limiter else {
            return Ok(None);
        };
        let decision = limiter.check(&meta.rate_key, 1).await?;
        if !decision.allowed {
            return Err(ChatError::RateLimited(decision));
        }
        Ok(Some(decision))
    }

    /// Records a finished call's tokens in the user's usage ledger and charges them to the
    /// budget. The reply exists by now; failing the call would only make the client retry
    /// into a replay, so a lost charge is logged instead.
    async fn account(&self, meta: &CallMeta, usage: Usage) {
        match self
            .store
            .record_usage(&meta.user, chrono::Utc::now(), usage)
            .await
        {
            Ok(()) => {}
            // A backend without a ledger (a third-party store) just has no usage figures.
            Err(StoreError::Unsupported { .. }) => {}
            Err(error) => tracing::error!(
                user = %meta.user,
                tokens = usage.total_tokens,
                error = %error,
                "could not record token usage in the ledger"
            ),
        }
        if let Some(budget) = &self.token_budget {
            if let Err(error) = budget.charge(&meta.budget_key, usage.budget_tokens()).await {
                tracing::error!(
                    key = %meta.budget_key,
                    tokens = usage.budget_tokens(),
                    error = %error,
                    "could not charge token usage to the budget"
                );
            }
        }
    }

    /// Audits a failed send. The rounds that completed before the failure (a send that
    /// called tools) used tokens: they are charged, though nothing is stored.
    async fn failed(
        &self,
        prepared: &Prepared,
        exchange: &rounds::Exchange,
        latency: Duration,
        error: &ChatError,
        partial_chars: usize,
        reasoning_chars: usize,
    ) {
        audit::model_call(
            &prepared.meta,
            self.model.model_id(),
            Some(prepared.target.chat_id()),
            Some(prepared.message_uid),
            latency,
            Outcome::Failed {
                error,
                partial_chars,
                reasoning_chars,
            },
        );
        if exchange.usage != Usage::default() {
            self.account(&prepared.meta, exchange.usage).await;
        }
    }

    /// The exchange stored under `uid`, if any.
    async fn stored_exchange(
        &self,
        user: &UserId,
        uid: MessageId,
    ) -> Result<Option<ChatReply>, ChatError> {
        let question = match self.store.get_message(user, uid).await {
            Ok(message) => message,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if question.role != Role::User {
            return Err(
                InvalidInput::new("message_uid", "names a reply, not a user message").into(),
            );
        }
        match self.store.get_message(user, uid.reply_id()).await {
            Ok(answer) => Ok(Some(ChatReply::from_messages(question, answer, true))),
            Err(StoreError::NotFound { .. }) => Err(StoreError::Conflict {
                message: format!("message_uid {uid} is used by a message whose reply was deleted"),
            }
            .into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores the exchange and charges its tokens. A reply of text alone is stored as
    /// text; one with reasoning or tool calls as its parts in order, so that the next turn
    /// sends them back.
    async fn finish(
        &self,
        prepared: Prepared,
        exchange: rounds::Exchange,
        stop_reason: StopReason,
        latency: Duration,
    ) -> Result<ChatReply, ChatError> {
        let rounds::Exchange {
            parts: reply_parts,
            usage,
            ..
        } = exchange;
        let model_id = self.model.model_id().to_owned();
        let uid = prepared.message_uid;
        let new_conversation = matches!(prepared.target, AppendTarget::CreateIfMissing(_));
        let mut reply_metadata = Metadata::new();
        reply_metadata.insert("stop_reason".into(), stop_reason.as_str().into());
        reply_metadata.insert("latency_ms".into(), (latency.as_millis() as u64).into());
        // The model answered but the exchange could not be kept: audited as a failed call.
        let store_failed = |meta: &CallMeta, error: StoreError| {
            let error = ChatError::from(error);
            let outcome = Outcome::Failed {
                error: &error,
                partial_chars: 0,
                reasoning_chars: 0,
            };
            audit::model_call(meta, &model_id, None, Some(uid), latency, outcome);
            error
        };
        let mut question = NewMessage::user(prepared.question)
            .with_id(uid)
            .with_metadata(prepared.metadata);
        if !prepared.question_parts.is_empty() {
            let mut parts = prepared.question_parts;
            if let Some(blobs) = &self.blobs {
                let chat_id = prepared.target.chat_id();
                let limit = self.policy.inline_attachment_bytes;
                if let Err(error) =
                    blob::offload(blobs.as_ref(), chat_id, uid, &mut parts, limit).await
                {
                    return Err(store_failed(&prepared.meta, error));
                }
            }
            question = question.with_parts(parts);
        }
        let reasoning_chars = reasoning_text(&reply_parts).map_or(0, |r| r.chars().count());
        let answer = match <[Part; 1]>::try_from(reply_parts) {
            Ok([Part::Text { text, citations }]) if citations.is_empty() => {
                NewMessage::assistant(text)
            }
            Ok(parts) => NewMessage::assistant(String::new()).with_parts(parts.into()),
            Err(parts) if parts.is_empty() => NewMessage::assistant(String::new()),
            Err(parts) => NewMessage::assistant(String::new()).with_parts(parts),
        };
        let answer = answer
            .with_id(uid.reply_id())
            .replying_to(uid)
            .with_model(model_id.clone())
            .with_usage(usage)
            .with_metadata(reply_metadata);
        let request = AppendRequest {
            target: prepared.target,
            messages: vec![question, answer],
        };
        let appended = match self.store.append(&prepared.meta.user, request).await {
            Ok(appended) => appended,
            Err(error) => return Err(store_failed(&prepared.meta, error)),
        };
        let mut stored = appended.messages.into_iter();
        let (Some(question), Some(answer)) = (stored.next(), stored.next()) else {
            return Err(StoreError::Backend {
                backend: self.store.backend(),
                source: "append returned fewer messages than it was given".into(),
            }
            .into());
        };

        audit::model_call(
            &prepared.meta,
            &model_id,
            Some(question.chat_id),
            Some(uid),
            latency,
            Outcome::Ok {
                usage,
                stop_reason: &stop_reason,
                replayed: appended.already_stored,
                reasoning_chars,
            },
        );
        if !appended.already_stored {
            self.account(&prepared.meta, usage).await;
        }

        let mut reply = ChatReply::from_messages(question, answer, appended.already_stored);
        reply.new_conversation = new_conversation && !appended.already_stored;
        reply.rate_limit = prepared.rate_limit;
        Ok(reply)
    }
}

/// The text of the [`Part::Reasoning`] parts among `parts`, joined by a blank line; `None`
/// when there is none.
pub(crate) fn reasoning_text(parts: &[Part]) -> Option<String> {
    let mut texts = parts.iter().filter_map(|part| match part {
        Part::Reasoning { text, .. } => Some(text.as_str()),
        _ => None,
    });
    let mut out = texts.next()?.to_owned();
    for text in texts {
        out.push_str("\n\n");
        out.push_str(text);
    }
    Some(out)
}

pub(super) fn validate_text(
    text: &str,
    field: &str,
    max_chars: usize,
    required: bool,
) -> Result<(), InvalidInput> {
    if required && text.trim().is_empty() {
        return Err(InvalidInput::new(field, "must not be empty"));
    }
    // Counting stops as soon as the limit is passed.
    if text.chars().nth(max_chars).is_some() {
        return Err(InvalidInput::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(())
}

/// The title of a conversation that starts with `message`: its first line, shortened.
fn title_of(message: &str, max_chars: usize) -> String {
    let line = message.trim().lines().next().unwrap_or_default().trim();
    let mut title: String = line.chars().take(max_chars).collect();
    if line.chars().nth(max_chars).is_some() {
        title.push('…');
    }
    title
}

#[cfg(test)]
mod tests;
