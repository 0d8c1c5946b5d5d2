//! Configuration shared by the hosts: flags, `BEDROCK_CHAT_*` environment variables and a
//! `.env` file, parsed by clap into one struct per concern.
//!
//! Precedence, highest first: a flag, the environment (including what `.env` set), the
//! default. [`load_dotenv`] reads `.env` from the working directory without overriding
//! variables already set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use bedrock_chat_core::{GuardrailConfig, InferenceConfig, Quota};
use clap::{Args, Parser, ValueEnum};

/// Reads `.env` from the working directory, if there is one, into the environment
/// (variables already set win).
///
/// # Errors
/// A `.env` file that exists but cannot be parsed.
pub fn load_dotenv() -> Result<(), dotenvy::Error> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Where conversations are kept, how callers are limited, and which model answers: what
/// the server, the CLI and the Lambda function share.
#[derive(Args, Clone, Debug)]
pub struct BackendArgs {
    /// The history store: `memory`, `sqlite:PATH`, `postgres://…`, `redis://…` or
    /// `dynamodb://TABLE?endpoint=URL&region=R`.
    #[arg(
        long,
        env = "BEDROCK_CHAT_STORE",
        default_value = "sqlite:bedrock-chat.db"
    )]
    pub store: String,

    /// Where large attachments go (the history store then keeps a reference): `memory`,
    /// `file:PATH` or `s3://BUCKET/PREFIX?endpoint=URL&region=R`. Unset: attachments stay in
    /// the history store (fine for SQLite and PostgreSQL; set it for DynamoDB, whose items
    /// hold at most 400 KB, and Redis).
    #[arg(long, env = "BEDROCK_CHAT_BLOB_STORE")]
    pub blob_store: Option<String>,

    /// Do not ask the model to cache the stable prefix of conversations (Bedrock prompt
    /// caching, on by default for the models that support it).
    #[arg(long, env = "BEDROCK_CHAT_NO_PROMPT_CACHING")]
    pub no_prompt_caching: bool,

    /// The rate limiter: `memory`, `redis://…` or `dynamodb://TABLE?endpoint=URL&region=R`.
    #[arg(long, env = "BEDROCK_CHAT_LIMITER", default_value = "memory")]
    pub limiter: String,

    /// Requests per caller (user, or client IP when anonymous), as `N/PERIOD` with PERIOD
    /// one of `s`, `min`, `h`, `day`.
    #[arg(long, env = "BEDROCK_CHAT_RATE_LIMIT", default_value = "10/min")]
    pub rate_limit: RateSpec,

    /// An optional limit over all callers together, as `N/PERIOD`.
    #[arg(long, env = "BEDROCK_CHAT_GLOBAL_RATE_LIMIT")]
    pub global_rate_limit: Option<RateSpec>,

    /// An optional token budget per caller, as `N/PERIOD` (e.g. `100000/day`).
    #[arg(long, env = "BEDROCK_CHAT_TOKEN_BUDGET")]
    pub token_budget: Option<RateSpec>,

    /// The model: `offline` (a deterministic local model) or `bedrock:MODEL_ID`. Defaults
    /// to `bedrock:$BEDROCK_MODEL_ID` when that variable is set, else `offline`. The AWS
    /// SDK's own configuration applies (region, credentials,
    /// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`).
    #[arg(long, env = "BEDROCK_CHAT_MODEL")]
    pub model: Option<String>,

    /// The system prompt when neither the request nor the conversation has one.
    #[arg(long, env = "BEDROCK_CHAT_SYSTEM_PROMPT")]
    pub system_prompt: Option<String>,

    /// Sampling temperature, 0 to 1.
    #[arg(long, env = "BEDROCK_CHAT_TEMPERATURE")]
    pub temperature: Option<f32>,

    /// The most tokens a reply may have.
    #[arg(long, env = "BEDROCK_CHAT_MAX_TOKENS")]
    pub max_tokens: Option<u32>,

    /// Nucleus sampling, 0 to 1.
    #[arg(long, env = "BEDROCK_CHAT_TOP_P")]
    pub top_p: Option<f32>,

    /// Let the model reason before it answers, with up to N tokens (Claude extended
    /// thinking: Claude 3.7 Sonnet and the Claude 4 family; the offline model reasons
    /// briefly). At least 1024, less than --max-tokens, and not with --temperature or
    /// --top-p. The reasoning streams apart from the answer and is stored with it.
    #[arg(long, env = "BEDROCK_CHAT_REASONING_BUDGET", value_name = "N")]
    pub reasoning_budget: Option<u32>,

    /// Offer the model a tool (repeat the flag, or list them with commas in the
    /// variable): `current_time` (the date and time now) or `recent_conversations` (the
    /// titles of the caller's own latest conversations). The model calls a tool when it
    /// needs it; calls and results stream as `tool_call` / `tool_result` events and are
    /// stored with the reply. The offline model calls a tool whose name the message
    /// mentions ("what is the current time?").
    #[arg(
        long = "tool",
        env = "BEDROCK_CHAT_TOOLS",
        value_enum,
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tools: Vec<crate::tools::ExampleTool>,

    /// The most rounds of tool calls one message may make; calls after that get an error
    /// and the model one last call to answer.
    #[arg(long, env = "BEDROCK_CHAT_MAX_TOOL_ROUNDS", default_value_t = 5)]
    pub max_tool_rounds: u32,

    /// Bedrock's service tier for every call: `default`, `flex` (cheaper, may wait),
    /// `priority` or `reserved`. Unset: the account's default.
    #[arg(long, env = "BEDROCK_CHAT_SERVICE_TIER", value_name = "TIER")]
    pub service_tier: Option<bedrock_chat_core::ServiceTier>,

    /// Ask for Bedrock's latency-optimised inference (on the models and Regions that
    /// offer it).
    #[arg(long, env = "BEDROCK_CHAT_LATENCY_OPTIMIZED")]
    pub latency_optimized: bool,

    /// Ask the model to cite the documents it is sent: answers then say which of their
    /// words rest on which passage (shown under the answer on the page, after it in the
    /// CLI). On the models that cite (Anthropic Claude 3.5 Sonnet v2 and later); other
    /// models answer as before.
    #[arg(long, env = "BEDROCK_CHAT_CITATIONS")]
    pub citations: bool,

    /// Model-specific request fields, a JSON object sent as Bedrock's
    /// `additionalModelRequestFields` (e.g. `{"top_k": 40}` for Claude).
    #[arg(long, env = "BEDROCK_CHAT_MODEL_REQUEST_FIELDS", value_name = "JSON", value_parser = json_object)]
    pub model_request_fields: Option<serde_json::Value>,

    /// Count each new message's tokens with the model (Bedrock's CountTokens, a free call
    /// before the model's) and size later context windows by those counts instead of by
    /// estimate.
    #[arg(long, env = "BEDROCK_CHAT_EXACT_TOKEN_COUNTS")]
    pub exact_token_counts: bool,

    /// A Bedrock Guardrail applied to every call, as `ID:VERSION`.
    #[arg(long, env = "BEDROCK_CHAT_GUARDRAIL")]
    pub guardrail: Option<GuardrailSpec>,

    /// The longest message accepted, in characters.
    #[arg(long, env = "BEDROCK_CHAT_MAX_MESSAGE_CHARS", default_value_t = 32_000)]
    pub max_message_chars: usize,

    /// Log format.
    #[arg(long, env = "BEDROCK_CHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Put the user's message text in audit events (off: logs hold no conversation text).
    #[arg(long, env = "BEDROCK_CHAT_LOG_MESSAGE_TEXT")]
    pub log_message_text: bool,
}

impl BackendArgs {
    /// The model setting with its default applied.
    pub fn model_spec(&self) -> String {
        match &self.model {
            Some(model) => model.clone(),
            None => match std::env::var("BEDROCK_MODEL_ID") {
                Ok(id) if !id.trim().is_empty() => format!("bedrock:{}", id.trim()),
                _ => "offline".to_owned(),
            },
        }
    }

    /// The sampling settings the flags give.
    pub fn inference(&self) -> InferenceConfig {
        let mut inference = InferenceConfig::new();
        inference.max_tokens = self.max_tokens;
        inference.temperature = self.temperature;
        inference.top_p = self.top_p;
        inference.reasoning_budget = self.reasoning_budget;
        inference.service_tier = self.service_tier;
        inference.latency_optimized = self.latency_optimized.then_some(true);
        inference.additional_fields = self.model_request_fields.clone();
        inference.citations = self.citations.then_some(true);
        inference
    }
}

/// A JSON object, for `--model-request-fields`.
fn json_object(text: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err("must be a JSON object, like {\"top_k\": 40}".to_owned()),
        Err(error) => Err(format!("is not JSON: {error}")),
    }
}

/// The fewest reasoning tokens Bedrock takes for Claude's extended thinking.
pub const MIN_REASONING_BUDGET: u32 = 1024;

/// Checks a reasoning budget against the rest of `inference` by Bedrock's rules for
/// extended thinking (at least [`MIN_REASONING_BUDGET`], less than `max_tokens`, no
/// `temperature` or `top_p`), so that a bad one is refused with the setting named before
/// anything is stored or any model is called, whatever the model. `max_tokens`,
/// `temperature` and `top_p` are named as the flags name them.
///
/// # Errors
/// What is wrong, in words.
pub fn check_reasoning(inference: &InferenceConfig) -> Result<(), String> {
    let Some(budget) = inference.reasoning_budget else {
        return Ok(());
    };
    if budget < MIN_REASONING_BUDGET {
        return Err(format!(
            "{budget} is under {MIN_REASONING_BUDGET}, the fewest reasoning tokens the model takes"
        ));
    }
    if let Some(max_tokens) = inference.max_tokens.filter(|&max| max <= budget) {
        return Err(format!(
            "{budget} must be less than --max-tokens ({max_tokens}): the answer needs tokens \
             after the reasoning"
        ));
    }
    if inference.temperature.is_some() || inference.top_p.is_some() {
        return Err("the model reasons only when neither --temperature nor --top-p is set".into());
    }
    Ok(())
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// How callers prove who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Anonymous: a per-browser identity cookie; limits are per client IP.
    None,
    /// Static API keys (`Authorization: Bearer KEY` or `X-API-Key: KEY`).
    ApiKey,
    /// JWT bearer tokens verified against a JWKS (Cognito-compatible).
    Jwt,
}

/// The HTTP server's own settings.
#[derive(Args, Clone, Debug)]
pub struct HttpArgs {
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, env = "BEDROCK_CHAT_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// How callers are identified.
    #[arg(long, env = "BEDROCK_CHAT_AUTH", value_enum, default_value_t = AuthMode::None)]
    pub auth: AuthMode,

    /// With `--auth api-key`: a file of lines `USER_ID KEY` (`#` starts a comment).
    #[arg(long, env = "BEDROCK_CHAT_API_KEYS")]
    pub api_keys: Option<PathBuf>,

    /// With `--auth jwt`: where the signing keys are published (a JWKS document).
    #[arg(long, env = "BEDROCK_CHAT_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// With `--auth jwt`: the required `iss` claim.
    #[arg(long, env = "BEDROCK_CHAT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// With `--auth jwt`: the accepted audience (`aud`, or Cognito's `client_id`).
    #[arg(long, env = "BEDROCK_CHAT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// An origin allowed to call the API from a browser (repeatable; comma-separated in
    /// the environment).
    #[arg(
        long = "cors-origin",
        env = "BEDROCK_CHAT_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// The largest request body accepted, in bytes (sends with attachments have their
    /// own limit, --max-attachment-body-bytes).
    #[arg(long, env = "BEDROCK_CHAT_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// The largest body of a send (`POST /api/v1/chats` and `/api/v1/chats/stream`),
    /// whose attachments travel in base64, in bytes (default 32 MiB).
    #[arg(
        long,
        env = "BEDROCK_CHAT_MAX_ATTACHMENT_BODY_BYTES",
        default_value_t = crate::http::DEFAULT_MAX_ATTACHMENT_BODY_BYTES
    )]
    pub max_attachment_body_bytes: usize,

    /// How long a non-streaming request may take, as `30s`, `2min`, ...
    #[arg(long, env = "BEDROCK_CHAT_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// How long shutdown waits for requests and streams in flight.
    #[arg(long, env = "BEDROCK_CHAT_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Take the client IP from the last `X-Forwarded-For` hop, the one the proxy in front
    /// of the server added (only behind such a proxy).
    #[arg(long, env = "BEDROCK_CHAT_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,

    /// Mark the identity cookie `Secure` (serve over HTTPS).
    #[arg(long, env = "BEDROCK_CHAT_SECURE_COOKIES")]
    pub secure_cookies: bool,
}

/// The example server's command line.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "bedrock-chat-server",
    version,
    about = "A chat backend on Amazon Bedrock: REST, streaming, history, limits",
    long_about = "A chat backend on Amazon Bedrock: REST and Server-Sent Events, \
conversation history, rate limits and token budgets, health checks and metrics.\n\n\
Every flag can also be set by its environment variable or in a .env file."
)]
pub struct ServerConfig {
    /// Store, limiter and model.
    #[command(flatten)]
    pub backends: BackendArgs,

    /// HTTP settings.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// The Lambda function's configuration: the server's settings, from the environment
/// (`BEDROCK_CHAT_*`; the listener's own, `--bind` and `--shutdown-timeout`, do not
/// apply), and how answers go back to Lambda.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "bedrock-chat-lambda",
    version,
    about = "The bedrock-chat HTTP API as an AWS Lambda function, configured like the server"
)]
pub struct LambdaConfig {
    /// Store, limiter and model.
    #[command(flatten)]
    pub backends: BackendArgs,

    /// HTTP settings.
    #[command(flatten)]
    pub http: HttpArgs,

    /// Stream answers with Lambda response streaming (a Function URL with invoke mode
    /// `RESPONSE_STREAM`), so Server-Sent Events arrive as they are generated. Off, each
    /// answer is buffered whole, as API Gateway HTTP APIs require.
    #[arg(long, env = "BEDROCK_CHAT_LAMBDA_STREAMING")]
    pub response_streaming: bool,
}

/// A rate as `N/PERIOD`: `10/min`, `2/s`, `100000/day`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateSpec {
    /// How many per window.
    pub limit: u64,
    /// The window.
    pub window: Duration,
}

impl RateSpec {
    /// The quota it describes.
    ///
    /// # Errors
    /// A limit of zero.
    pub fn quota(&self) -> Result<Quota, bedrock_chat_core::InvalidInput> {
        Quota::new(self.limit, self.window)
    }
}

impl FromStr for RateSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (limit, period) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not N/PERIOD (like 10/min)"))?;
        let limit: u64 = limit
            .trim()
            .parse()
            .map_err(|_| format!("`{limit}` is not a whole number"))?;
        if limit == 0 {
            return Err("the limit must be at least 1".into());
        }
        let window = match period.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => parse_duration(other)
                .map_err(|_| format!("`{other}` is not a period (s, min, h, day or like 90s)"))?,
        };
        Ok(Self { limit, window })
    }
}

/// A guardrail as `ID:VERSION`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardrailSpec(pub GuardrailConfig);

impl FromStr for GuardrailSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        // An ARN holds colons itself: the version is after the last one.
        let (id, version) = s
            .rsplit_once(':')
            .filter(|(id, version)| !id.is_empty() && !version.is_empty())
            .ok_or_else(|| format!("`{s}` is not ID:VERSION"))?;
        Ok(Self(GuardrailConfig::new(id, version)))
    }
}

/// Parses `30s`, `2min`, `1h`, `500ms`, or plain seconds.
///
/// # Errors
/// Anything else.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30s"))?;
    let duration = match unit.trim() {
        "" | "s" | "sec" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "d" | "day" => Duration::from_secs(n * 86_400),
        _ => return Err(format!("`{s}` has an unknown unit (ms, s, min, h, d)")),
    };
    if duration.is_zero() {
        return Err("a duration must be more than zero".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_the_flags_document() {
        assert_eq!(
            "10/min".parse::<RateSpec>().unwrap(),
            RateSpec {
                limit: 10,
                window: Duration::from_secs(60)
            }
        );
        assert_eq!(
            "100000/day".parse::<RateSpec>().unwrap().window,
            Duration::from_secs(86_400)
        );
        assert_eq!(
            "5/90s".parse::<RateSpec>().unwrap().window,
            Duration::from_secs(90)
        );
        for bad in ["10", "0/min", "x/min", "10/fortnight", "10/"] {
            assert!(bad.parse::<RateSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn guardrails_take_the_version_after_the_last_colon() {
        let spec: GuardrailSpec = "arn:aws:bedrock:us-east-1:1:guardrail/abc:3"
            .parse()
            .unwrap();
        assert_eq!(
            spec.0.identifier,
            "arn:aws:bedrock:us-east-1:1:guardrail/abc"
        );
        assert_eq!(spec.0.version, "3");
        assert!("abc".parse::<GuardrailSpec>().is_err());
        assert!("abc:".parse::<GuardrailSpec>().is_err());
    }

    #[test]
    fn tier_latency_and_model_fields_become_the_inference_config() {
        let config = ServerConfig::try_parse_from([
            "server",
            "--service-tier",
            "flex",
            "--latency-optimized",
            "--model-request-fields",
            r#"{"top_k": 40}"#,
            "--citations",
        ])
        .unwrap();
        let inference = config.backends.inference();
        assert!(inference.wants_citations());
        assert_eq!(
            inference.service_tier,
            Some(bedrock_chat_core::ServiceTier::Flex)
        );
        assert_eq!(inference.latency_optimized, Some(true));
        assert_eq!(
            inference.additional_fields,
            Some(serde_json::json!({"top_k": 40}))
        );
        for bad in [
            &["server", "--service-tier", "gold"][..],
            &["server", "--model-request-fields", "[1]"],
            &["server", "--model-request-fields", "{"],
        ] {
            assert!(ServerConfig::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reasoning_budgets_follow_bedrocks_rules() {
        let inference = |budget: u32| InferenceConfig::new().with_reasoning_budget(budget);
        assert!(check_reasoning(&InferenceConfig::new()).is_ok());
        assert!(check_reasoning(&inference(1024)).is_ok());
        assert!(check_reasoning(&inference(1023)).is_err());
        assert!(check_reasoning(&inference(4096).with_max_tokens(8192)).is_ok());
        assert!(check_reasoning(&inference(4096).with_max_tokens(4096)).is_err());
        let mut sampled = inference(2048);
        sampled.temperature = Some(0.5);
        assert!(check_reasoning(&sampled).is_err());
        sampled.temperature = None;
        sampled.top_p = Some(0.9);
        assert!(check_reasoning(&sampled).is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2min").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn every_flag_parses_from_the_command_line() {
        let config = ServerConfig::try_parse_from([
            "server",
            "--bind",
            "127.0.0.1:0",
            "--store",
            "memory",
            "--rate-limit",
            "3/s",
            "--global-rate-limit",
            "100/min",
            "--token-budget",
            "1000/day",
            "--model",
            "offline",
            "--guardrail",
            "gr:1",
            "--auth",
            "api-key",
            "--cors-origin",
            "https://a.example",
            "--cors-origin",
            "https://b.example",
            "--request-timeout",
            "5s",
            "--blob-store",
            "file:blobs",
            "--no-prompt-caching",
            "--max-attachment-body-bytes",
            "1000",
            "--reasoning-budget",
            "2048",
        ])
        .unwrap();
        assert_eq!(config.backends.store, "memory");
        assert_eq!(config.backends.blob_store.as_deref(), Some("file:blobs"));
        assert!(config.backends.no_prompt_caching);
        assert_eq!(config.http.max_attachment_body_bytes, 1000);
        assert_eq!(config.backends.inference().reasoning_budget, Some(2048));
        assert_eq!(config.backends.rate_limit.limit, 3);
        assert_eq!(config.http.auth, AuthMode::ApiKey);
        assert_eq!(config.http.cors_origins.len(), 2);
        assert_eq!(config.http.request_timeout, Duration::from_secs(5));
    }
}
