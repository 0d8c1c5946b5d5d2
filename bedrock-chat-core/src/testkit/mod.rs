//! [`FakeBedrock`]: a local HTTP server that speaks the Bedrock Runtime wire protocol, so
//! the real `aws-sdk-bedrockruntime` client (and so [`BedrockChatModel`]) can be tested
//! without AWS (feature `testkit`).
//!
//! It serves `POST /model/{modelId}/converse` (JSON), `/converse-stream`
//! (`application/vnd.amazon.eventstream`: `messageStart`, `contentBlockDelta`s,
//! `contentBlockStop`, `messageStop`, `metadata` with usage), and `/invoke` and
//! `/invoke-with-response-stream` for Anthropic Messages bodies. It checks requests as
//! Bedrock does (known model id, a user first, alternating roles, no empty content,
//! `maxTokens`, temperature and top-p in range, input that fits, images and documents
//! within Bedrock's limits and what their format says) and answers errors in Bedrock's
//! shape: the status, an `x-amzn-errortype` header, a `{"message": ...}` body. Images and
//! documents count as input tokens by Bedrock's published estimates, and cache points
//! are accounted as Bedrock reports them ([`set_cache_min_tokens`](FakeBedrock::set_cache_min_tokens)).
//!
//! Reasoning: a Converse request with `additionalModelRequestFields.thinking.type ==
//! "enabled"` is checked as Bedrock checks it (a Claude 3.7 / 4 model, else "does not
//! support extended thinking"; `budget_tokens` at least 1,024 and under `maxTokens`; no
//! `temperature` or `topP`; no forced tool), then answered with its reasoning first,
//! `"Thinking about: <last user text>"` unless a reply scripts its own
//! ([`FakeReply::with_reasoning`]): Converse puts a `reasoningContent.reasoningText`
//! block (text and a deterministic signature) before the answer's block; ConverseStream
//! sends `contentBlockDelta`s of `reasoningContent.text` a word at a time at block 0, one
//! `reasoningContent.signature` and `contentBlockStop`, then the answer at block 1.
//! Reasoning pieces count as deltas for stream faults, and reasoning tokens as output
//! tokens. A request whose history carries a `reasoningText` without its signature is
//! refused, as Bedrock refuses unsigned reasoning sent back, and so is reasoning sent to a
//! model that does not reason. The InvokeModel paths reason the same way for Anthropic's
//! `thinking: {type: "enabled", budget_tokens}`: a `thinking` block (and a
//! `redacted_thinking` one when scripted) before the answer's, streamed as `thinking_delta`s,
//! a `signature_delta` and the block's stop before the answer's block starts; a `thinking`
//! block sent back without its signature is refused.
//!
//! Citations: a Converse document with `citations: {enabled: true}` is checked as Bedrock
//! checks it (a model that cites, else "does not support citations"), and the answer then
//! quotes the first sentence of the newest cited text document after the echo, in a
//! `citationsContent` block (ConverseStream: a `citation` delta, then the quoted text, as a
//! block of its own) whose citation gives the document's name and the quote's characters.
//!
//! By default it echoes the last user message, a word per delta; a request that forces a
//! tool (`toolChoice.tool`, or Anthropic's `tool_choice`) gets a call of that tool with input
//! generated to validate against its JSON schema (required fields, types, enums, nested
//! objects and arrays, local `$ref`s), strings made from the property names and the last
//! user message, as the offline model answers structured output. Scripted replies
//! ([`FakeReply`]) and faults ([`Fault`]: throttling, 5xx, an exception in the middle of a
//! stream, a stall, a corrupt frame) are answered first, in the order pushed. Every request
//! is recorded ([`requests`](FakeBedrock::requests)).
//!
//! ```
//! use std::time::Duration;
//! use bedrock_chat_core::bedrock::BedrockConfig;
//! use bedrock_chat_core::testkit::{FakeBedrock, FakeReply, Fault};
//! use bedrock_chat_core::{ChatModel, ModelMessage, ModelRequest};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fake = FakeBedrock::start().await?;
//! fake.push_fault(Fault::throttling());
//! fake.push_reply(FakeReply::text("Hello from the fake").with_usage(10, 4));
//! let model = fake.chat_model(
//!     BedrockConfig::new("amazon.nova-micro-v1:0")
//!         .with_backoff(Duration::from_millis(10), Duration::from_millis(100)),
//! );
//! let reply = model
//!     .converse(ModelRequest::new([ModelMessage::user("Hi")]))
//!     .await?;
//! assert_eq!(reply.text, "Hello from the fake");
//! assert_eq!(fake.request_count(), 2, "throttled once, then answered");
//! # Ok(()) }
//! ```

mod converse;
mod invoke;
mod plan;
mod script;
mod server;
mod stream;
mod wire;

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrockruntime::Client;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use script::{FakeReply, Fault, Operation, RecordedRequest, Timing};

use crate::bedrock::{BedrockChatModel, BedrockConfig};
use converse::Limits;
use plan::PromptCache;
use script::Scripted;
use server::{lock, Models, State};

/// The model ids the fake knows from the start; each also works behind a cross-region
/// inference profile prefix (`us.`, `eu.`, `apac.`, `global.`).
pub const KNOWN_MODELS: &[&str] = &[
    "anthropic.claude-3-haiku-20240307-v1:0",
    "anthropic.claude-3-sonnet-20240229-v1:0",
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "anthropic.claude-sonnet-4-20250514-v1:0",
    "anthropic.claude-opus-4-20250514-v1:0",
    "anthropic.claude-opus-4-1-20250805-v1:0",
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "anthropic.claude-haiku-4-5-20251001-v1:0",
    "amazon.nova-micro-v1:0",
    "amazon.nova-lite-v1:0",
    "amazon.nova-pro-v1:0",
    "meta.llama3-8b-instruct-v1:0",
    "meta.llama3-70b-instruct-v1:0",
    "meta.llama3-1-8b-instruct-v1:0",
    "mistral.mistral-large-2402-v1:0",
    "openai.gpt-oss-20b-1:0",
    "openai.gpt-oss-120b-1:0",
];

/// The region the fake's clients sign for (any works; the fake does not check signatures).
pub const FAKE_REGION: &str = "us-east-1";

/// A fake Bedrock Runtime on a loopback port. Stops when dropped.
///
/// See the [module docs](self) for what it serves; the methods below script it and read
/// what it received.
#[derive(Debug)]
pub struct FakeBedrock {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
}

impl Drop for FakeBedrock {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl FakeBedrock {
    /// Starts a fake on an ephemeral port of 127.0.0.1.
    ///
    /// # Errors
    /// The I/O error of binding the port.
    pub async fn start() -> io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a fake on `addr` (port 0: any free port). Must run inside a Tokio runtime,
    /// which serves it.
    ///
    /// # Errors
    /// The I/O error of binding `addr`.
    pub async fn start_on(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            timing: Mutex::new(Timing::default()),
            models: Mutex::new(Models {
                known: KNOWN_MODELS.iter().map(|m| (*m).to_owned()).collect(),
                denied: HashSet::new(),
                accept_any: false,
            }),
            limits: Mutex::new(Limits {
                max_output_tokens: 8192,
                context_window_tokens: 200_000,
            }),
            prompt_cache: Mutex::new(PromptCache::new(1024)),
        });
        let shutdown = CancellationToken::new();
        tokio::spawn(server::serve(
            listener,
            Arc::clone(&state),
            shutdown.clone(),
        ));
        Ok(Self {
            addr,
            state,
            shutdown,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL (`http://127.0.0.1:PORT`), the endpoint override for the SDK.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An SDK configuration for the fake: its endpoint, region [`FAKE_REGION`], and static
    /// test credentials. The SDK's default retries apply.
    pub fn sdk_config(&self) -> aws_sdk_bedrockruntime::Config {
        aws_sdk_bedrockruntime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(FAKE_REGION))
            .credentials_provider(Credentials::new(
                "AKIAFAKEBEDROCK",
                "fake-bedrock-secret",
                None,
                None,
                "fake-bedrock",
            ))
            .endpoint_url(self.url())
            .build()
    }

    /// A plain SDK client for the fake.
    pub fn client(&self) -> Client {
        Client::from_conf(self.sdk_config())
    }

    /// A [`BedrockChatModel`] on the fake, with `config`'s model id, retries and timeouts.
    pub fn chat_model(&self, config: BedrockConfig) -> BedrockChatModel {
        BedrockChatModel::from_client(&self.client(), config)
    }

    /// Answers the next call with `reply`, after what was pushed before.
    pub fn push_reply(&self, reply: FakeReply) {
        lock(&self.state.script).push_back(Scripted::Reply(reply));
    }

    /// Answers the next call with `fault`, after what was pushed before.
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.state.script).push_back(Scripted::Fault(fault));
    }

    /// Throttles the next `n` calls.
    pub fn throttle_next(&self, n: usize) {
        let mut script = lock(&self.state.script);
        script.extend(std::iter::repeat_n(Scripted::Fault(Fault::throttling()), n));
    }

    /// How many scripted answers are left.
    pub fn pending(&self) -> usize {
        lock(&self.state.script).len()
    }

    /// Sets the delays of streamed replies that do not set their own (plain replies wait
    /// as long as their stream would take).
    pub fn set_timing(&self, timing: Timing) {
        *lock(&self.state.timing) = timing;
    }

    /// Knows `model_id` too.
    pub fn add_model(&self, model_id: impl Into<String>) {
        lock(&self.state.models).known.insert(model_id.into());
    }

    /// Accepts every non-empty model id.
    pub fn accept_any_model(&self) {
        lock(&self.state.models).accept_any = true;
    }

    /// Refuses `model_id` with `AccessDeniedException`, as for a model whose access was
    /// not granted.
    pub fn deny_model(&self, model_id: impl Into<String>) {
        lock(&self.state.models).denied.insert(model_id.into());
    }

    /// Sets the largest `maxTokens` accepted (default 8192).
    pub fn set_max_output_tokens(&self, tokens: u64) {
        lock(&self.state.limits).max_output_tokens = tokens;
    }

    /// Sets the context window, in tokens of 4 characters (default 200,000); longer input
    /// is refused with "Input is too long for requested model."
    pub fn set_context_window_tokens(&self, tokens: u64) {
        lock(&self.state.limits).context_window_tokens = tokens;
    }

    /// Caches prompt prefixes from this many tokens on (1,024 by default, Claude's
    /// minimum): a Converse request's cache points (`cachePoint` blocks) are accounted as
    /// Bedrock does, the prefix seen before reported as `cacheReadInputTokens`, the new part
    /// as `cacheWriteInputTokens`, and `inputTokens` only what follows the last cache point.
    pub fn set_cache_min_tokens(&self, tokens: u64) {
        lock(&self.state.prompt_cache).min_tokens = tokens;
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        lock(&self.state.requests).len()
    }

    /// The last request received.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.state.requests).last().cloned()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        lock(&self.state.requests).clear();
    }
}
