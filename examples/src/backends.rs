//! From configuration to a running [`ChatService`]: the store, the limiters and the model
//! named by [`BackendArgs`], connected (migrations and tables created where the backend
//! does that), composed with the policy the flags give.

use std::sync::Arc;

use bedrock_chat_core::backend::error_chain;
use bedrock_chat_core::{
    BlobStore, ChatModel, ChatPolicy, ChatService, HistoryStore, OfflineChatModel, RateLimiter,
};
use bedrock_chat_ratelimit::Layers;

use crate::config::BackendArgs;

/// Why the backends could not be set up: each names the setting at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The store URL is wrong or the store cannot be reached.
    #[error("--store {url}: {reason}")]
    Store {
        /// The URL as given.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A limiter URL is wrong or the limiter cannot be reached.
    #[error("--limiter {url}: {reason}")]
    Limiter {
        /// The URL as given.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The model setting is wrong.
    #[error("--model {spec}: {reason}")]
    Model {
        /// The setting as given.
        spec: String,
        /// What went wrong.
        reason: String,
    },
    /// Another setting is wrong.
    #[error("{setting}: {reason}")]
    Setting {
        /// The flag.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The store or a limiter URL is well formed but what it names cannot be reached (or
    /// failed while being set up); trying again later may work.
    #[error("{setting} {url}: {reason}")]
    Unavailable {
        /// The flag: `--store` or `--limiter`.
        setting: &'static str,
        /// The URL as given.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl StartupError {
    /// Whether a backend could not be reached (rather than a setting being wrong): the CLI
    /// exits with a different code for it.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// The store named by `url` ([`bedrock_chat_store::from_url`]): `memory`, `sqlite:PATH`,
/// `postgres://…`, `redis://…` or `dynamodb://TABLE?endpoint=URL&region=R`. SQL
/// migrations run and a DynamoDB table is created when missing; the store must answer a
/// ping.
///
/// # Errors
/// [`StartupError::Store`] naming what is wrong: the scheme, a part of the URL, or the
/// service that cannot be reached.
pub async fn store(url: &str) -> Result<Arc<dyn HistoryStore>, StartupError> {
    let fail = |reason: String| StartupError::Store {
        url: url.to_owned(),
        reason,
    };
    let unavailable = |reason: String| StartupError::Unavailable {
        setting: "--store",
        url: url.to_owned(),
        reason,
    };
    let store = bedrock_chat_store::from_url(url)
        .await
        .map_err(|e| match e {
            bedrock_chat_store::StoreUrlError::Connect { .. } => unavailable(error_chain(&e)),
            _ => fail(error_chain(&e)),
        })?;
    store
        .ping()
        .await
        .map_err(|e| unavailable(error_chain(&e)))?;
    Ok(store)
}

/// The blob store named by `url` ([`bedrock_chat_store::blob_from_url`]): `memory`,
/// `file:PATH` or `s3://BUCKET/PREFIX?endpoint=URL&region=R`.
///
/// # Errors
/// [`StartupError::Setting`] naming what is wrong, or [`StartupError::Unavailable`] when the
/// bucket or directory cannot be reached.
pub async fn blob_store(url: &str) -> Result<Arc<dyn BlobStore>, StartupError> {
    bedrock_chat_store::blob_from_url(url)
        .await
        .map_err(|e| match e {
            bedrock_chat_store::BlobUrlError::Connect { .. } => StartupError::Unavailable {
                setting: "--blob-store",
                url: url.to_owned(),
                reason: error_chain(&e),
            },
            _ => StartupError::Setting {
                setting: "--blob-store",
                reason: error_chain(&e),
            },
        })
}

/// A limiter at `url` for `layers`, its keys under `prefix` (so that the request limit
/// and the token budget never share counters). Several layers are decided in one atomic
/// step by the backend.
async fn limiter(
    url: &str,
    layers: Layers,
    prefix: &str,
) -> Result<Arc<dyn RateLimiter>, StartupError> {
    let fail = |reason: String| StartupError::Limiter {
        url: url.to_owned(),
        reason,
    };
    let unavailable = |reason: String| StartupError::Unavailable {
        setting: "--limiter",
        url: url.to_owned(),
        reason,
    };
    let limiter = bedrock_chat_ratelimit::from_url(url, layers, prefix)
        .await
        .map_err(|e| match e {
            bedrock_chat_ratelimit::LimiterUrlError::Connect { .. } => unavailable(error_chain(&e)),
            _ => fail(error_chain(&e)),
        })?;
    limiter
        .ping()
        .await
        .map_err(|e| unavailable(error_chain(&e)))?;
    Ok(limiter)
}

/// The model named by `spec`: `offline` or `bedrock:MODEL_ID`.
///
/// # Errors
/// [`StartupError::Model`] for anything else.
pub async fn model(spec: &str) -> Result<Arc<dyn ChatModel>, StartupError> {
    let bad = |reason: &str| StartupError::Model {
        spec: spec.to_owned(),
        reason: reason.to_owned(),
    };
    if spec == "offline" {
        return Ok(Arc::new(OfflineChatModel::new()));
    }
    match spec.split_once(':') {
        Some(("bedrock", id)) if !id.trim().is_empty() => {
            let config = bedrock_chat_core::BedrockConfig::new(id.trim());
            Ok(Arc::new(
                bedrock_chat_core::BedrockChatModel::load(config).await,
            ))
        }
        Some(("bedrock", _)) => Err(bad("give the model id: bedrock:MODEL_ID")),
        _ => Err(bad("expected `offline` or `bedrock:MODEL_ID`")),
    }
}

/// How long one call of an example tool may take.
const TOOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The policy the flags give.
///
/// # Errors
/// [`StartupError::Setting`] for an out-of-range setting.
pub fn policy(args: &BackendArgs) -> Result<ChatPolicy, StartupError> {
    for (setting, value) in [("--temperature", args.temperature), ("--top-p", args.top_p)] {
        if let Some(v) = value {
            if !(0.0..=1.0).contains(&v) {
                return Err(StartupError::Setting {
                    setting,
                    reason: format!("{v} is not between 0 and 1"),
                });
            }
        }
    }
    crate::config::check_reasoning(&args.inference()).map_err(|reason| StartupError::Setting {
        setting: "--reasoning-budget",
        reason,
    })?;
    if args.max_message_chars == 0 {
        return Err(StartupError::Setting {
            setting: "--max-message-chars",
            reason: "must be at least 1".into(),
        });
    }
    let mut policy = ChatPolicy::default()
        .with_inference(args.inference())
        .with_max_message_chars(args.max_message_chars)
        .with_audit_message_text(args.log_message_text)
        .with_prompt_caching(!args.no_prompt_caching)
        .with_tool_limits(args.max_tool_rounds, TOOL_TIMEOUT)
        .with_exact_token_counts(args.exact_token_counts);
    if let Some(prompt) = &args.system_prompt {
        policy = policy.with_system_prompt(prompt.clone());
    }
    if let Some(guardrail) = &args.guardrail {
        policy = policy.with_guardrail(guardrail.0.clone());
    }
    Ok(policy)
}

/// The chat service the settings describe: store, request limiter (with the global layer
/// over it when set), token budget, model and policy.
///
/// # Errors
/// A [`StartupError`] naming the setting at fault, when a URL is malformed or a service
/// cannot be reached.
pub async fn service(args: &BackendArgs) -> Result<ChatService, StartupError> {
    let policy = policy(args)?;
    let store = store(&args.store).await?;
    let model = model(&args.model_spec()).await?;
    let quota = |spec: &crate::config::RateSpec, setting: &'static str| {
        spec.quota().map_err(|e| StartupError::Setting {
            setting,
            reason: e.to_string(),
        })
    };

    let mut layers = Layers::per_key(quota(&args.rate_limit, "--rate-limit")?);
    if let Some(global) = &args.global_rate_limit {
        // Seed 003's two layers: all callers together, then each caller.
        layers = Layers::shared("global", quota(global, "--global-rate-limit")?)
            .and_per_key(quota(&args.rate_limit, "--rate-limit")?);
    }
    let request_limiter = limiter(&args.limiter, layers, "requests").await?;
    let mut builder = ChatService::builder(model, Arc::clone(&store))
        .request_limiter(request_limiter)
        .policy(policy);
    for tool in &args.tools {
        builder = builder.tool(tool.build(&store));
    }
    if let Some(url) = &args.blob_store {
        builder = builder.blob_store(blob_store(url).await?);
    }
    if let Some(budget) = &args.token_budget {
        let budget = limiter(
            &args.limiter,
            Layers::per_key(quota(budget, "--token-budget")?),
            "tokens",
        )
        .await?;
        builder = builder.token_budget(budget);
    }
    Ok(builder.build())
}
