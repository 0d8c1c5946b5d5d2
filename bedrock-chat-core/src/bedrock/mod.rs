//! Amazon Bedrock as a [`ChatModel`]: [`BedrockChatModel`] calls the Converse and
//! ConverseStream APIs through `aws-sdk-bedrockruntime` (feature `bedrock`).
//!
//! Any Converse-capable model or inference profile works (Anthropic Claude, Amazon Nova,
//! Meta Llama, OpenAI gpt-oss, ...). The model gets the system prompt, the messages, the
//! inference settings (max tokens, temperature, top-p, stop sequences) and the guardrail of
//! each [`ModelRequest`]; an [`OutputSchema`](crate::OutputSchema) is forced through tool
//! use and comes back as [`ModelResponse::structured`].
//!
//! A [reasoning budget](crate::InferenceConfig::reasoning_budget) turns on Anthropic
//! Claude's extended thinking (Claude 3.7 Sonnet and the Claude 4 family; older Claude
//! models are refused by Bedrock): it is sent as `additionalModelRequestFields`
//! `{"thinking": {"type": "enabled", "budget_tokens": N}}`, checked first against Bedrock's
//! rules (at least 1,024 tokens, less than `max_tokens`, no temperature or top-p, no
//! structured output), and the reasoning comes back as [`ModelResponse::reasoning`] or
//! streamed [`ModelEvent::ReasoningDelta`](crate::ModelEvent::ReasoningDelta)s with their
//! signature. Other model families (Amazon Nova, Meta Llama, OpenAI gpt-oss, ...) are not
//! mapped yet: they get no reasoning field, and answer without reasoning.
//!
//! Failures are classified into [`ModelError`]: throttling (and a model not ready, and a
//! service quota exceeded) as `Throttled`; 5xx answers and connection failures as
//! `Unavailable`; timeouts as `Timeout`; validation as `InvalidRequest`, or
//! `ContextOverflow` when the input is too long; `AccessDenied`; `ModelNotFound`; model
//! and stream errors as `ModelFailure`. The retryable ones are retried with exponential
//! backoff by the SDK, up to [`BedrockConfig::max_attempts`]; a stream is retried only
//! before its first event, so text is never repeated.
//!
//! ```no_run
//! use bedrock_chat_core::bedrock::{BedrockChatModel, BedrockConfig};
//! use bedrock_chat_core::{ChatModel, ModelEvent, ModelMessage, ModelRequest};
//! use futures::StreamExt;
//!
//! # async fn run() -> Result<(), bedrock_chat_core::ModelError> {
//! let model = BedrockChatModel::load(
//!     BedrockConfig::new("anthropic.claude-3-haiku-20240307-v1:0").with_region("us-east-1"),
//! )
//! .await;
//! let request = ModelRequest::new([ModelMessage::user("What is Amazon Bedrock?")])
//!     .with_system("Answer in one sentence.");
//! let mut stream = model.converse_stream(request).await?;
//! while let Some(event) = stream.next().await {
//!     match event? {
//!         ModelEvent::TextDelta(text) => print!("{text}"),
//!         ModelEvent::Stop(reason) => println!("\n[{}]", reason.as_str()),
//!         ModelEvent::Usage(usage) => println!("{} tokens", usage.total_tokens),
//!         _ => {} // kinds of event added later
//!     }
//! }
//! # Ok(()) }
//! ```

mod classify;
pub(crate) mod config;
mod document;
mod request;
mod response;
mod stream;
mod structured;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_bedrockruntime::types::{ConverseTokensRequest, CountTokensInput};
use aws_sdk_bedrockruntime::Client;

pub use config::{
    supports_citations, supports_native_structured_output, supports_prompt_caching, BedrockConfig,
};
pub use structured::StructuredReply;

use crate::error::ModelError;
use crate::model::{ChatModel, ModelRequest, ModelResponse, ModelStream};
use classify::{classify_call, BedrockRetryClassifier};
use request::ConverseParts;

/// A [`ChatModel`] on Amazon Bedrock's Converse API. Cheap to clone: clones share the
/// client and its connection pool.
///
/// Build it with [`load`](Self::load) (the AWS credential chain, with region, profile and
/// endpoint from the [`BedrockConfig`]), [`from_sdk_config`](Self::from_sdk_config) or
/// [`from_client`](Self::from_client). The credentials need `bedrock:InvokeModel` and
/// `bedrock:InvokeModelWithResponseStream` on the model, and the account access to it.
///
/// ```no_run
/// use std::sync::Arc;
/// use bedrock_chat_core::bedrock::{BedrockChatModel, BedrockConfig};
/// use bedrock_chat_core::{ChatService, SendRequest, UserId};
/// use bedrock_chat_store::InMemoryHistoryStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let model = BedrockChatModel::load(
///     BedrockConfig::new("amazon.nova-micro-v1:0").with_region("us-east-1"),
/// )
/// .await;
/// let service = ChatService::builder(Arc::new(model), Arc::new(InMemoryHistoryStore::new()))
///     .build();
/// let reply = service.send(SendRequest::new(UserId::new("alice")?, "Hello!")).await?;
/// println!("{}", reply.text());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BedrockChatModel {
    shared: Arc<Shared>,
}

/// What every call (and every stream, for its retries) needs.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) config: BedrockConfig,
}

impl std::fmt::Debug for BedrockChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BedrockChatModel")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl BedrockChatModel {
    /// A model configured from the environment, as the AWS CLI is: credentials from the
    /// default chain, and region, profile and endpoint from `config` where it sets them.
    ///
    /// Nothing is checked here; missing credentials or region show up as the first call's
    /// error.
    pub async fn load(config: BedrockConfig) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(profile) = &config.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk_config = loader.load().await;
        Self::from_sdk_config(&sdk_config, config)
    }

    /// A model from an AWS SDK configuration that you loaded. `config`'s region, profile and
    /// endpoint are not used; its retry and timeout settings are.
    pub fn from_sdk_config(sdk_config: &SdkConfig, config: BedrockConfig) -> Self {
        Self::build(
            aws_sdk_bedrockruntime::config::Builder::from(sdk_config),
            config,
        )
    }

    /// A model on a client that you built (its credentials, region, endpoint and HTTP
    /// client are kept). `config`'s retry and timeout settings replace the client's, so
    /// that errors are retried as [`ModelError::is_retryable`] says.
    pub fn from_client(client: &Client, config: BedrockConfig) -> Self {
        Self::build(client.config().to_builder(), config)
    }

    fn build(builder: aws_sdk_bedrockruntime::config::Builder, config: BedrockConfig) -> Self {
        let sdk_config = builder
            .retry_config(config.retry_config())
            .timeout_config(config.timeout_config())
            .retry_classifier(BedrockRetryClassifier)
            .build();
        Self {
            shared: Arc::new(Shared {
                client: Client::from_conf(sdk_config),
                config,
            }),
        }
    }

    /// The SDK client, for calls this crate does not wrap.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The settings.
    pub fn config(&self) -> &BedrockConfig {
        &self.shared.config
    }
}

#[async_trait]
impl ChatModel for BedrockChatModel {
    fn model_id(&self) -> &str {
        &self.shared.config.model_id
    }

    async fn converse(&self, request: ModelRequest) -> Result<ModelResponse, ModelError> {
        let started = Instant::now();
        let config = &self.shared.config;
        let parts = ConverseParts::new(request, config.traits())?;
        let guardrail = parts.guardrail();
        let result = self
            .shared
            .client
            .converse()
            .model_id(&self.shared.config.model_id)
            .set_messages(Some(parts.messages))
            .set_system(parts.system)
            .set_inference_config(parts.inference)
            .set_tool_config(parts.tool_config)
            .set_guardrail_config(guardrail)
            .set_additional_model_request_fields(parts.additional_fields)
            .set_service_tier(parts.service_tier)
            .set_performance_config(parts.performance)
            .set_request_metadata(parts.request_metadata)
            .set_output_config(parts.output_config.clone())
            .send()
            .await
            .map_err(classify_call)?;
        let output = parts
            .output_schema
            .as_ref()
            .map(|schema| match parts.output_config {
                Some(_) => response::Output::Native(schema),
                None => response::Output::Tool(schema),
            });
        response::into_response(result, output, started.elapsed())
    }

    async fn converse_stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError> {
        let config = &self.shared.config;
        let parts = Arc::new(ConverseParts::new(request, config.traits())?);
        let receiver = stream::open(&self.shared, &parts).await?;
        Ok(stream::events(Arc::clone(&self.shared), parts, receiver))
    }

    async fn count_tokens(&self, request: &ModelRequest) -> Result<Option<u64>, ModelError> {
        let config = &self.shared.config;
        // Counted as the call would be made, cache points aside (they change no count).
        let traits = request::ModelTraits {
            caching: false,
            ..config.traits()
        };
        let parts = ConverseParts::new(request.clone(), traits)?;
        let input = ConverseTokensRequest::builder()
            .set_messages(Some(parts.messages))
            .set_system(parts.system)
            .set_tool_config(parts.tool_config)
            .set_additional_model_request_fields(parts.additional_fields)
            .build();
        let output = self
            .shared
            .client
            .count_tokens()
            .model_id(&config.model_id)
            .input(CountTokensInput::Converse(input))
            .send()
            .await
            .map_err(classify_call)?;
        Ok(Some(u64::try_from(output.input_tokens).unwrap_or(0)))
    }
}
