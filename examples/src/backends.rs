//! From configuration to a running [`ChatService`]: the store, the limiters and the model
//! named by [`BackendArgs`], connected (migrations and tables created where the backend
//! does that), composed with the policy the flags give.

use std::sync::Arc;

use bedrock_chat_core::{
    ChatModel, ChatPolicy, ChatService, HistoryStore, OfflineChatModel, RateLimiter,
};
use bedrock_chat_ratelimit::{
    DynamoDbRateLimiter, InMemoryRateLimiter, LayeredRateLimiter, RedisLimiterConfig,
    RedisRateLimiter,
};
use bedrock_chat_store::{
    DynamoDbConfig, DynamoDbHistoryStore, InMemoryHistoryStore, PostgresHistoryStore,
    RedisHistoryStore, SqliteHistoryStore,
};

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
}

/// The store named by `url`: `memory`, `sqlite:PATH` (`sqlite::memory:` for a private
/// in-memory database), `postgres://…`, `redis://…` or
/// `dynamodb://TABLE?endpoint=URL&region=R`. SQL migrations run and a DynamoDB table is
/// created when missing.
///
/// # Errors
/// [`StartupError::Store`] naming what is wrong: the scheme, a part of the URL, or the
/// service that cannot be reached.
pub async fn store(url: &str) -> Result<Arc<dyn HistoryStore>, StartupError> {
    let fail = |reason: String| StartupError::Store {
        url: url.to_owned(),
        reason,
    };
    let store: Arc<dyn HistoryStore> = match Backend::parse(url).map_err(&fail)? {
        Backend::Memory => Arc::new(InMemoryHistoryStore::new()),
        Backend::Sqlite => Arc::new(
            SqliteHistoryStore::open(url)
                .await
                .map_err(|e| fail(chain(&e)))?,
        ),
        Backend::Postgres => Arc::new(
            PostgresHistoryStore::open(url)
                .await
                .map_err(|e| fail(chain(&e)))?,
        ),
        Backend::Redis => Arc::new(
            RedisHistoryStore::open(url)
                .await
                .map_err(|e| fail(chain(&e)))?,
        ),
        Backend::DynamoDb(target) => {
            let client = target.client().await;
            DynamoDbHistoryStore::create_table(&client, &target.table)
                .await
                .map_err(|e| fail(chain(&e)))?;
            Arc::new(DynamoDbHistoryStore::new(
                client,
                DynamoDbConfig::new(target.table),
            ))
        }
    };
    store.ping().await.map_err(|e| fail(chain(&e)))?;
    Ok(store)
}

/// A limiter at `url` for `quota`, its keys under `prefix` (so that the request limit,
/// the global limit and the token budget never share counters).
async fn limiter(
    url: &str,
    quota: bedrock_chat_core::Quota,
    prefix: &str,
) -> Result<Arc<dyn RateLimiter>, StartupError> {
    let fail = |reason: String| StartupError::Limiter {
        url: url.to_owned(),
        reason,
    };
    Ok(match Backend::parse(url).map_err(&fail)? {
        Backend::Memory => Arc::new(InMemoryRateLimiter::new(quota)),
        Backend::Redis => {
            let config = RedisLimiterConfig {
                prefix: format!("bedrock-chat:rl:{prefix}"),
                ..RedisLimiterConfig::default()
            };
            Arc::new(
                RedisRateLimiter::connect(url, quota, config)
                    .await
                    .map_err(|e| fail(chain(&e)))?,
            )
        }
        Backend::DynamoDb(target) => {
            let client = target.client().await;
            DynamoDbRateLimiter::create_table(&client, &target.table)
                .await
                .map_err(|e| fail(chain(&e)))?;
            Arc::new(DynamoDbRateLimiter::new(client, &target.table, quota).with_prefix(prefix))
        }
        Backend::Sqlite | Backend::Postgres => {
            return Err(fail(
                "a rate limiter is `memory`, `redis://…` or `dynamodb://TABLE`".into(),
            ))
        }
    })
}

/// An error and its sources, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

/// A backend URL, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Backend {
    Memory,
    Sqlite,
    Postgres,
    Redis,
    DynamoDb(DynamoDbTarget),
}

/// `dynamodb://TABLE?endpoint=URL&region=R`.
#[derive(Debug, PartialEq, Eq)]
struct DynamoDbTarget {
    table: String,
    endpoint: Option<String>,
    region: Option<String>,
}

impl DynamoDbTarget {
    /// A client from the AWS SDK's configuration chain, with the URL's endpoint and
    /// region over it.
    async fn client(&self) -> aws_sdk_dynamodb::Client {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        aws_sdk_dynamodb::Client::new(&loader.load().await)
    }
}

impl Backend {
    fn parse(url: &str) -> Result<Self, String> {
        if url == "memory" {
            return Ok(Self::Memory);
        }
        let Some((scheme, _)) = url.split_once(':') else {
            return Err("expected `memory` or a URL such as `sqlite:PATH`".into());
        };
        match scheme {
            "sqlite" => {
                let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
                if path.is_empty() {
                    return Err("the SQLite URL names no file (sqlite:PATH)".into());
                }
                Ok(Self::Sqlite)
            }
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "redis" | "rediss" => Ok(Self::Redis),
            "dynamodb" => {
                let parsed =
                    url::Url::parse(url).map_err(|e| format!("not a dynamodb:// URL: {e}"))?;
                let table = parsed.host_str().unwrap_or_default().to_owned();
                if table.is_empty() {
                    return Err("the DynamoDB URL names no table (dynamodb://TABLE)".into());
                }
                if !table
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                    || !(3..=255).contains(&table.len())
                {
                    return Err(format!(
                        "`{table}` is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)"
                    ));
                }
                let mut target = DynamoDbTarget {
                    table,
                    endpoint: None,
                    region: None,
                };
                for (key, value) in parsed.query_pairs() {
                    match key.as_ref() {
                        "endpoint" => {
                            url::Url::parse(&value)
                                .map_err(|e| format!("endpoint `{value}` is not a URL: {e}"))?;
                            target.endpoint = Some(value.into_owned());
                        }
                        "region" => target.region = Some(value.into_owned()),
                        other => {
                            return Err(format!("unknown parameter `{other}` (endpoint, region)"))
                        }
                    }
                }
                Ok(Self::DynamoDb(target))
            }
            other => Err(format!(
                "unknown scheme `{other}` (memory, sqlite, postgres, redis, dynamodb)"
            )),
        }
    }
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
    if args.max_message_chars == 0 {
        return Err(StartupError::Setting {
            setting: "--max-message-chars",
            reason: "must be at least 1".into(),
        });
    }
    let mut policy = ChatPolicy::default()
        .with_inference(args.inference())
        .with_max_message_chars(args.max_message_chars)
        .with_audit_message_text(args.log_message_text);
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

    let per_key = limiter(
        &args.limiter,
        quota(&args.rate_limit, "--rate-limit")?,
        "requests",
    )
    .await?;
    let request_limiter: Arc<dyn RateLimiter> = match &args.global_rate_limit {
        Some(global) => {
            let global = limiter(
                &args.limiter,
                quota(global, "--global-rate-limit")?,
                "global",
            )
            .await?;
            Arc::new(LayeredRateLimiter::shared("global", global).and_per_key(per_key))
        }
        None => per_key,
    };
    let mut builder = ChatService::builder(model, store)
        .request_limiter(request_limiter)
        .policy(policy);
    if let Some(budget) = &args.token_budget {
        let budget = limiter(&args.limiter, quota(budget, "--token-budget")?, "tokens").await?;
        builder = builder.token_budget(budget);
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_url_form_parses() {
        assert_eq!(Backend::parse("memory").unwrap(), Backend::Memory);
        assert_eq!(Backend::parse("sqlite:chat.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::parse("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::parse("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(Backend::parse("rediss://h:6380/0").unwrap(), Backend::Redis);
        assert_eq!(
            Backend::parse(
                "dynamodb://chat-history?endpoint=http://127.0.0.1:8000&region=eu-west-1"
            )
            .unwrap(),
            Backend::DynamoDb(DynamoDbTarget {
                table: "chat-history".into(),
                endpoint: Some("http://127.0.0.1:8000".into()),
                region: Some("eu-west-1".into()),
            })
        );
    }

    #[test]
    fn bad_urls_name_the_part_that_is_wrong() {
        for (url, part) in [
            ("mysql://h/db", "scheme `mysql`"),
            ("nonsense", "expected `memory`"),
            ("sqlite:", "names no file"),
            ("dynamodb://", "names no table"),
            ("dynamodb://t!?region=x", "not a DynamoDB table name"),
            ("dynamodb://table?colour=blue", "parameter `colour`"),
            ("dynamodb://table?endpoint=::", "endpoint `::`"),
        ] {
            let error = Backend::parse(url).unwrap_err();
            assert!(error.contains(part), "{url}: {error}");
        }
    }
}
