//! Model calls that keep no conversation: stateless sends (seed 003's public `POST /chat`),
//! structured output, and personas made with it. They pass the same limits, budget and
//! audit as a send.

use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::audit::{self, Operation, Outcome};
use super::{ChatService, SendRequest};
use crate::error::{ChatError, InvalidInput, ModelError};
use crate::ids::UserId;
use crate::limiter::Decision;
use crate::model::{ModelRequest, ModelResponse, OutputSchema, StopReason};
use crate::types::{Conversation, Metadata, NewConversation, Usage};

/// The answer to a stateless send: nothing was stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StatelessReply {
    /// The reply's text.
    pub text: String,
    /// The model that answered.
    pub model: String,
    /// Tokens the call used.
    pub usage: Usage,
    /// Why the model stopped.
    pub stop_reason: StopReason,
    /// The request limiter's decision, when one is configured.
    pub rate_limit: Option<Decision>,
}

/// Structured output: the value the model produced, deserialized, and what it cost.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StructuredReply<T> {
    /// The model's output.
    pub value: T,
    /// The model that answered.
    pub model: String,
    /// Tokens the call used.
    pub usage: Usage,
    /// The request limiter's decision, when one is configured.
    pub rate_limit: Option<Decision>,
}

/// A persona (seed 001): a character a conversation is held with, made from a description
/// by [`ChatService::create_persona`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persona {
    /// A short name.
    pub name: String,
    /// One or two sentences on who it is.
    pub description: String,
    /// The system prompt that makes the model speak as it.
    pub system_prompt: String,
}

/// The longest persona name kept; longer ones are refused as a schema violation.
const MAX_PERSONA_NAME_CHARS: usize = 120;

impl Persona {
    /// The structured-output schema a model fills to make a persona.
    pub fn output_schema() -> OutputSchema {
        OutputSchema {
            name: "persona".into(),
            description: "A chat persona made from the user's description".into(),
            schema: serde_json::json!({
                "type": "object",
                "properties": {
                    "name": {
                        "type": "string",
                        "description": "The persona's short name, a few words at most"
                    },
                    "description": {
                        "type": "string",
                        "description": "One or two sentences on who the persona is"
                    },
                    "system_prompt": {
                        "type": "string",
                        "description": "Instructions, in the second person (\"You are ...\"), that make an assistant speak and act as this persona"
                    }
                },
                "required": ["name", "description", "system_prompt"]
            }),
        }
    }

    /// The system prompt of the call that makes a persona.
    pub const INSTRUCTIONS: &'static str = "You design chat personas. From the user's \
        description, choose a short name, describe the persona in one or two sentences, and \
        write a system prompt in the second person that makes an assistant speak and act as \
        that persona. Answer only through the persona tool.";

    /// A new conversation held with this persona: titled with its name, its system prompt
    /// set, and the persona in the conversation's metadata (`"persona"`).
    pub fn new_conversation(&self) -> NewConversation {
        let mut metadata = Metadata::new();
        metadata.insert(
            "persona".into(),
            serde_json::json!({"name": self.name, "description": self.description}),
        );
        NewConversation::new(self.name.clone())
            .with_system_prompt(self.system_prompt.clone())
            .with_metadata(metadata)
    }

    /// Checks what a model made: every field set, the name short.
    fn validate(self) -> Result<Self, ModelError> {
        let violation = ModelError::schema_violation;
        for (field, value) in [
            ("name", &self.name),
            ("description", &self.description),
            ("system_prompt", &self.system_prompt),
        ] {
            if value.trim().is_empty() {
                return Err(violation(format!("the persona's {field} is empty")));
            }
        }
        if self.name.chars().nth(MAX_PERSONA_NAME_CHARS).is_some() {
            return Err(violation(format!(
                "the persona's name is over {MAX_PERSONA_NAME_CHARS} characters"
            )));
        }
        Ok(self)
    }
}

/// A persona made by the model, and what it cost.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PersonaReply {
    /// The persona.
    pub persona: Persona,
    /// The model that made it.
    pub model: String,
    /// Tokens the call used.
    pub usage: Usage,
    /// The request limiter's decision, when one is configured.
    pub rate_limit: Option<Decision>,
}

impl ChatService {
    /// Sends one message with no conversation: the limits, budget, usage ledger and audit
    /// of a send, but nothing stored (seed 003's public `POST /chat`, which would otherwise
    /// grow storage with every anonymous call). The request's `system_prompt` (or the
    /// policy's) applies; `message_uid` is ignored, since nothing is kept to replay.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use bedrock_chat_core::{ChatService, HistoryStore, OfflineChatModel, SendRequest, UserId};
    /// use bedrock_chat_store::InMemoryHistoryStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = InMemoryHistoryStore::new();
    /// let service =
    ///     ChatService::builder(Arc::new(OfflineChatModel::new()), Arc::new(store.clone())).build();
    /// let visitor = UserId::new("anonymous")?;
    /// let reply = service
    ///     .send_stateless(SendRequest::new(visitor.clone(), "When is the next train?"))
    ///     .await?;
    /// assert!(!reply.text.is_empty());
    /// assert_eq!(store.usage(&visitor).await?.conversations, 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ChatError::InvalidInput`] for a bad message or a `chat_id` (a stateless send has
    /// no conversation); [`ChatError::RateLimited`] / [`ChatError::BudgetExhausted`];
    /// [`ChatError::Model`].
    pub async fn send_stateless(&self, request: SendRequest) -> Result<StatelessReply, ChatError> {
        let (response, rate_limit) = self.call_once(request, Operation::Stateless, None).await?;
        Ok(StatelessReply {
            text: response.text,
            model: self.inner.model.model_id().to_owned(),
            usage: response.usage,
            stop_reason: response.stop_reason,
            rate_limit,
        })
    }

    /// Asks the model for output that fits `schema` (structured output) and deserializes
    /// it into `T`, with the limits, budget, usage ledger and audit of a send. The request's
    /// message is the prompt; nothing is stored.
    ///
    /// # Errors
    /// As [`send_stateless`](Self::send_stateless); [`ModelError::SchemaViolation`] (as
    /// [`ChatError::Model`]) when the model's output is missing or does not fit `T`.
    pub async fn generate_structured<T: DeserializeOwned>(
        &self,
        request: SendRequest,
        schema: OutputSchema,
    ) -> Result<StructuredReply<T>, ChatError> {
        let name = schema.name.clone();
        let (response, rate_limit) = self
            .call_once(request, Operation::Structured, Some(schema))
            .await?;
        let value = match response.structured {
            Some(json) => serde_json::from_value(json).map_err(|e| {
                ModelError::schema_violation(format!(
                    "the `{name}` output does not fit the expected type"
                ))
                .with_source(e)
            })?,
            None => {
                return Err(ModelError::schema_violation(format!(
                    "the model returned no `{name}` output"
                ))
                .into())
            }
        };
        Ok(StructuredReply {
            value,
            model: self.inner.model.model_id().to_owned(),
            usage: response.usage,
            rate_limit,
        })
    }

    /// Makes a [`Persona`] from a description (the request's message) through structured
    /// output. Start a conversation with it with
    /// [`start_conversation`](Self::start_conversation).
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
    /// let link = UserId::new("link")?;
    /// let made = service
    ///     .create_persona(SendRequest::new(link.clone(), "A patient chess coach"))
    ///     .await?;
    /// let conversation = service.start_conversation(&link, &made.persona).await?;
    /// assert_eq!(conversation.system_prompt.as_deref(), Some(made.persona.system_prompt.as_str()));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`generate_structured`](Self::generate_structured); a persona with an empty
    /// field or an overlong name is a [`ModelError::SchemaViolation`].
    pub async fn create_persona(
        &self,
        mut request: SendRequest,
    ) -> Result<PersonaReply, ChatError> {
        request.system_prompt = Some(Persona::INSTRUCTIONS.to_owned());
        let made = self
            .generate_structured::<Persona>(request, Persona::output_schema())
            .await?;
        Ok(PersonaReply {
            persona: made.value.validate()?,
            model: made.model,
            usage: made.usage,
            rate_limit: made.rate_limit,
        })
    }

    /// Starts an empty conversation held with `persona`.
    ///
    /// # Errors
    /// [`ChatError::InvalidInput`] for a persona whose system prompt is over the policy's
    /// limit; [`ChatError::Store`] when the store fails.
    pub async fn start_conversation(
        &self,
        user: &UserId,
        persona: &Persona,
    ) -> Result<Conversation, ChatError> {
        super::validate_text(
            &persona.system_prompt,
            "system_prompt",
            self.inner.policy.max_system_prompt_chars,
            true,
        )?;
        Ok(self
            .inner
            .store
            .create_conversation(user, persona.new_conversation())
            .await?)
    }

    /// One model call with no history: validation, limits, the call, audit, accounting.
    async fn call_once(
        &self,
        request: SendRequest,
        operation: Operation,
        output_schema: Option<OutputSchema>,
    ) -> Result<(ModelResponse, Option<Decision>), ChatError> {
        let inner = &self.inner;
        inner.validate(&request)?;
        if request.chat_id.is_some() {
            return Err(InvalidInput::new(
                "chat_id",
                "a call without a conversation cannot continue one",
            )
            .into());
        }
        let meta = request.call_meta(operation, inner.policy.audit_message_text);
        let rate_limit = inner.check_limits(&meta).await?;
        let model_request = ModelRequest {
            system: request
                .system_prompt
                .clone()
                .or_else(|| inner.policy.system_prompt.clone()),
            messages: vec![request.model_turn()],
            inference: inner.inference_for(&request),
            guardrail: request
                .guardrail
                .clone()
                .or_else(|| inner.policy.guardrail.clone()),
            output_schema,
            tools: Vec::new(),
            request_metadata: meta.invocation_metadata(None),
            prompt_caching: inner.policy.prompt_caching,
        };
        let model = inner.model.model_id();
        let started = Instant::now();
        match inner.model.converse(model_request).await {
            Ok(response) => {
                audit::model_call(
                    &meta,
                    model,
                    None,
                    None,
                    started.elapsed(),
                    Outcome::Ok {
                        usage: response.usage,
                        stop_reason: &response.stop_reason,
                        replayed: false,
                        reasoning_chars: super::reasoning_text(&response.reasoning)
                            .map_or(0, |r| r.chars().count()),
                    },
                );
                inner.account(&meta, response.usage).await;
                Ok((response, rate_limit))
            }
            Err(error) => {
                let error = ChatError::from(error);
                audit::model_call(
                    &meta,
                    model,
                    None,
                    None,
                    started.elapsed(),
                    Outcome::Failed {
                        error: &error,
                        partial_chars: 0,
                        reasoning_chars: 0,
                    },
                );
                Err(error)
            }
        }
    }
}
