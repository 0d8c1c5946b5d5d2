//! [`BedrockConfig`]: the settings of a [`BedrockChatModel`](super::BedrockChatModel).

use std::time::Duration;

use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;

/// How a [`BedrockChatModel`](super::BedrockChatModel) calls Bedrock: which model, where,
/// and how patiently.
///
/// Region, profile and endpoint are used only by
/// [`BedrockChatModel::load`](super::BedrockChatModel::load), which resolves the rest
/// (credentials above all) through the usual AWS chain: environment, shared config and
/// credentials files, SSO, web identity, container and instance metadata.
///
/// ```
/// use std::time::Duration;
/// use bedrock_chat_core::bedrock::BedrockConfig;
///
/// let config = BedrockConfig::new("us.anthropic.claude-sonnet-4-20250514-v1:0")
///     .with_region("us-east-1")
///     .with_max_attempts(5)
///     .with_stream_idle_timeout(Duration::from_secs(30));
/// assert_eq!(config.max_attempts, 5);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BedrockConfig {
    /// The model or inference profile id (`anthropic.claude-3-haiku-20240307-v1:0`,
    /// `amazon.nova-micro-v1:0`, `us.anthropic.claude-sonnet-4-20250514-v1:0`, ...) or ARN.
    pub model_id: String,
    /// The AWS region; `None` takes it from the environment or profile.
    pub region: Option<String>,
    /// The named profile of the shared AWS config files; `None` uses the default chain.
    pub profile: Option<String>,
    /// Another endpoint than Bedrock's own (a VPC endpoint, a proxy, a fake Bedrock).
    pub endpoint_url: Option<String>,
    /// Attempts per call, the first included: throttling, 5xx answers, connection failures
    /// and timeouts are retried with exponential backoff until this many were made. 1
    /// turns retries off.
    pub max_attempts: u32,
    /// The backoff before the first retry of a throttled call; it doubles each retry.
    /// (The SDK starts other retries at 50 ms.)
    pub initial_backoff: Duration,
    /// The longest backoff between two attempts.
    pub max_backoff: Duration,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// The longest a whole call may take, retries included, up to the start of a streamed
    /// reply or the end of a plain one. `None`: no limit.
    pub call_timeout: Option<Duration>,
    /// A streamed reply that sends nothing for this long fails with
    /// [`ModelError::Timeout`](crate::ModelError::Timeout).
    pub stream_idle_timeout: Duration,
    /// Whether calls that ask for [prompt caching](crate::ModelRequest::prompt_caching) get
    /// cache points. `None` (the default) decides by the model id: on for the models
    /// Bedrock caches prompts for ([`supports_prompt_caching`]).
    pub prompt_caching: Option<bool>,
    /// Whether [structured output](crate::ModelRequest::output_schema) asks the model for
    /// JSON text that fits the schema (Bedrock's `outputConfig`) instead of forcing a call
    /// of a tool whose input is the schema. `None` (the default) decides by the model id
    /// ([`supports_native_structured_output`]).
    pub native_structured_output: Option<bool>,
}

/// Whether Bedrock takes native structured output (`outputConfig` with a JSON schema) for
/// `model_id`, as far as this crate knows: Anthropic Claude Sonnet 4.5, Haiku 4.5, Opus
/// 4.1 and Opus 4.5 (behind a cross-Region profile prefix too). Other models get the
/// forced tool, which every model with tool use takes; override it with
/// [`BedrockConfig::with_native_structured_output`].
///
/// ```
/// use bedrock_chat_core::bedrock::supports_native_structured_output;
/// assert!(supports_native_structured_output("us.anthropic.claude-sonnet-4-5-20250929-v1:0"));
/// assert!(!supports_native_structured_output("anthropic.claude-sonnet-4-20250514-v1:0"));
/// assert!(!supports_native_structured_output("amazon.nova-lite-v1:0"));
/// ```
pub fn supports_native_structured_output(model_id: &str) -> bool {
    const FAMILIES: &[&str] = &[
        "anthropic.claude-sonnet-4-5",
        "anthropic.claude-haiku-4-5",
        "anthropic.claude-opus-4-1",
        "anthropic.claude-opus-4-5",
    ];
    in_families(model_id, FAMILIES)
}

/// Whether `model_id` cites the documents it is given (Converse's `citations` on a
/// document block), as far as this crate knows: Anthropic Claude 3.5 Sonnet v2, Claude 3.5
/// Haiku, Claude 3.7 Sonnet and the Claude 4 family (behind a cross-Region profile prefix
/// too). [`InferenceConfig::citations`](crate::InferenceConfig::citations) turns citations
/// on for these models only; the others get their documents as before and cite nothing.
///
/// ```
/// use bedrock_chat_core::bedrock::supports_citations;
/// assert!(supports_citations("us.anthropic.claude-sonnet-4-5-20250929-v1:0"));
/// assert!(supports_citations("anthropic.claude-3-5-sonnet-20241022-v2:0"));
/// assert!(!supports_citations("anthropic.claude-3-5-sonnet-20240620-v1:0"));
/// assert!(!supports_citations("amazon.nova-lite-v1:0"));
/// ```
pub fn supports_citations(model_id: &str) -> bool {
    const FAMILIES: &[&str] = &[
        "anthropic.claude-3-5-sonnet-20241022",
        "anthropic.claude-3-5-haiku",
        "anthropic.claude-3-7-sonnet",
        "anthropic.claude-sonnet-4",
        "anthropic.claude-opus-4",
        "anthropic.claude-haiku-4",
    ];
    in_families(model_id, FAMILIES)
}

/// Whether `model_id` reasons (extended thinking) and so takes its earlier reasoning
/// back: Anthropic Claude 3.7 Sonnet and the Claude 4 family. Other models are sent a
/// conversation's stored reasoning no more (Bedrock refuses it).
pub(crate) fn reasons(model_id: &str) -> bool {
    const FAMILIES: &[&str] = &[
        "anthropic.claude-3-7-sonnet",
        "anthropic.claude-sonnet-4",
        "anthropic.claude-opus-4",
        "anthropic.claude-haiku-4",
    ];
    in_families(model_id, FAMILIES)
}

/// Whether `model_id`, behind a cross-Region inference profile's prefix or not, starts
/// with one of `families`.
pub(crate) fn in_families(model_id: &str, families: &[&str]) -> bool {
    let id = ["us.", "eu.", "apac.", "global.", "us-gov."]
        .iter()
        .find_map(|prefix| model_id.strip_prefix(prefix))
        .unwrap_or(model_id);
    families.iter().any(|family| id.starts_with(family))
}

/// Whether Bedrock caches prompts for `model_id`: Anthropic Claude 3.5 Haiku, 3.7 Sonnet
/// and the Claude 4 family, and Amazon Nova, directly or through a cross-region inference
/// profile (`us.`, `eu.`, `apac.`, `global.`). Other models, ARNs and unknown ids: no.
///
/// ```
/// use bedrock_chat_core::bedrock::supports_prompt_caching;
/// assert!(supports_prompt_caching("us.anthropic.claude-sonnet-4-20250514-v1:0"));
/// assert!(supports_prompt_caching("amazon.nova-lite-v1:0"));
/// assert!(!supports_prompt_caching("anthropic.claude-3-haiku-20240307-v1:0"));
/// assert!(!supports_prompt_caching("meta.llama3-8b-instruct-v1:0"));
/// ```
pub fn supports_prompt_caching(model_id: &str) -> bool {
    const FAMILIES: &[&str] = &[
        "anthropic.claude-3-5-haiku",
        "anthropic.claude-3-7-sonnet",
        "anthropic.claude-sonnet-4",
        "anthropic.claude-opus-4",
        "anthropic.claude-haiku-4",
        "amazon.nova-",
    ];
    in_families(model_id, FAMILIES)
}

impl BedrockConfig {
    /// Settings for `model_id` with defaults: 3 attempts, 500 ms initial backoff, 20 s
    /// maximum backoff, 10 s to connect, 5 minutes per call, 60 s of silence in a stream.
    pub fn new(model_id: impl Into<String>) -> Self {
        Self {
            model_id: model_id.into(),
            region: None,
            profile: None,
            endpoint_url: None,
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(10),
            call_timeout: Some(Duration::from_secs(300)),
            stream_idle_timeout: Duration::from_secs(60),
            prompt_caching: None,
            native_structured_output: None,
        }
    }

    /// Turns cache points on or off whatever the model id says (for a model this library
    /// does not know yet, or a fake).
    pub fn with_prompt_caching(mut self, on: bool) -> Self {
        self.prompt_caching = Some(on);
        self
    }

    /// Whether calls asking for prompt caching get cache points.
    pub fn caches_prompts(&self) -> bool {
        self.prompt_caching
            .unwrap_or_else(|| supports_prompt_caching(&self.model_id))
    }

    /// Whether a [reasoning budget](crate::InferenceConfig::reasoning_budget) is sent, as
    /// Anthropic's extended thinking: for Anthropic Claude model ids (and ARNs that name
    /// one). Other families are not mapped yet.
    pub(crate) fn takes_thinking(&self) -> bool {
        self.model_id.contains("anthropic.claude")
    }

    /// Sets [`native_structured_output`](Self::native_structured_output).
    pub fn with_native_structured_output(mut self, on: bool) -> Self {
        self.native_structured_output = Some(on);
        self
    }

    /// What the model takes, for building its requests.
    pub(crate) fn traits(&self) -> super::request::ModelTraits {
        super::request::ModelTraits {
            caching: self.caches_prompts(),
            thinking: self.takes_thinking(),
            native_output: self
                .native_structured_output
                .unwrap_or_else(|| supports_native_structured_output(&self.model_id)),
            citations: supports_citations(&self.model_id),
            reasoning: reasons(&self.model_id),
        }
    }

    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets the named profile.
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Sets the endpoint.
    pub fn with_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Sets the attempts per call (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the initial and the maximum backoff between attempts.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the whole-call timeout (`None`: no limit).
    pub fn with_call_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Sets how long a streamed reply may be silent.
    pub fn with_stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.stream_idle_timeout = timeout;
        self
    }

    pub(crate) fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts.max(1))
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    pub(crate) fn timeout_config(&self) -> TimeoutConfig {
        let mut builder = TimeoutConfig::builder().connect_timeout(self.connect_timeout);
        builder.set_operation_timeout(self.call_timeout);
        builder.build()
    }

    /// The backoff before stream attempt `attempt + 1` (our own retries of a stream that
    /// failed before its first delta), without jitter.
    pub(crate) fn stream_backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}
