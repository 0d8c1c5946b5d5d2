//! [`DynamoDbRateLimiter`]: seed 003's design — per-key fixed windows in DynamoDB, one
//! conditional write per decision, old windows removed by TTL.
//!
//! # Table layout
//! | attribute | type | what |
//! |---|---|---|
//! | `pk` (partition key) | S | `{prefix}#{window_ms}#{key}` |
//! | `window` (sort key) | N | the window's number: epoch milliseconds / window length |
//! | `count` | N | units spent in the window |
//! | `expires_at` | N | epoch seconds a window after the window ends: the TTL attribute |
//!
//! [`DynamoDbRateLimiter::create_table`] makes such a table (on-demand billing, TTL on).
//!
//! # One round trip
//! A check is one `UpdateItem`: `ADD count :cost` under the condition
//! `attribute_not_exists(count) OR count <= :limit - :cost`, returning the new count. A
//! refusal is the condition failing; the count comes back with it
//! (`ReturnValuesOnConditionCheckFailure`), or from one consistent read where the
//! service does not return it. A zero-cost check is one consistent `GetItem`.
//!
//! # Layers
//! A limiter made from several [`Layers`] decides them together in one transaction, all
//! layers or none (see the `layered` module's notes: one `TransactGetItems` and one
//! `TransactWriteItems` with a condition per layer). Each layer has its own item, with
//! `pk` = `{prefix}#{layer}#{window_ms}#{k|s}#{key or shared name}` (`k` for a per-key
//! layer, `s` for a shared one).
//!
//! # Clocks
//! The window comes from the app server's clock (the injected [`Clock`]). As with the Redis
//! limiter, servers whose clocks disagree by `d` may count a request in the neighbouring
//! window during the first or last `d` of a window; keep servers on NTP and windows much
//! longer than the drift.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, KeyType, ReturnValue, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use bedrock_chat_core::backend::dynamodb::{self, attribute, is_transient_code};
use bedrock_chat_core::backend::BackendError;
use bedrock_chat_core::limiter::{validate_key, Window};
use bedrock_chat_core::{Clock, Decision, Quota, RateLimitError, RateLimiter, SystemClock};

use crate::layered::{LayerScope, Layers, Mode};

mod layered;

const BACKEND: &str = dynamodb::BACKEND;
const PK: &str = "pk";
const SK: &str = "window";
const COUNT: &str = "count";
const EXPIRES: &str = "expires_at";

/// A [`RateLimiter`] in a DynamoDB table: exact across every process sharing the table.
///
/// Made from one [`Quota`], it counts each caller's key with one conditional `UpdateItem`
/// per decision; made from several [`Layers`], it enforces all of them as one atomic step
/// (one transaction over every layer's item) and reports the most restrictive layer. Its
/// [`quota`](RateLimiter::quota) is the first layer's.
///
/// ```no_run
/// use bedrock_chat_core::{Quota, RateLimiter};
/// use bedrock_chat_ratelimit::{DynamoDbRateLimiter, Layers};
///
/// # async fn demo() -> Result<(), bedrock_chat_core::RateLimitError> {
/// let config = aws_config::load_from_env().await;
/// let client = aws_sdk_dynamodb::Client::new(&config);
/// DynamoDbRateLimiter::create_table(&client, "chat-rate-limits").await?;
/// let limiter = DynamoDbRateLimiter::new(client, "chat-rate-limits", Quota::per_minute(10)?);
/// let decision = limiter.check("203.0.113.7", 1).await?;
///
/// // Seed 003: 10 per minute per IP and 100 per second over all IPs, decided together.
/// let layers = Layers::per_key(Quota::per_minute(10)?).and_shared("global", Quota::per_second(100)?);
/// # let client = aws_sdk_dynamodb::Client::new(&config);
/// let layered = DynamoDbRateLimiter::new(client, "chat-rate-limits", layers);
/// let decision = layered.check("203.0.113.7", 1).await?;
/// # let _ = decision; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct DynamoDbRateLimiter {
    client: Client,
    table: Arc<str>,
    prefix: Arc<str>,
    quota: Quota,
    layers: Arc<Layers>,
    /// One per-key layer: one `UpdateItem`, and the item layout without layer numbers.
    single: bool,
    clock: Arc<dyn Clock>,
}

impl DynamoDbRateLimiter {
    /// A limiter enforcing a [`Quota`] or [`Layers`] over `table` on the system clock,
    /// with the key prefix `rl`.
    pub fn new(client: Client, table: &str, quota: impl Into<Layers>) -> Self {
        let layers: Layers = quota.into();
        let single = matches!(layers.as_slice(), [layer] if layer.scope == LayerScope::PerKey);
        Self {
            client,
            table: table.into(),
            prefix: "rl".into(),
            quota: layers.first_quota(),
            layers: Arc::new(layers),
            single,
            clock: Arc::new(SystemClock),
        }
    }

    /// The layers this limiter enforces (one, for a limiter made from a [`Quota`]).
    pub fn layers(&self) -> &Layers {
        &self.layers
    }

    /// Starts every partition key with `prefix` (several limiters can share a table).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Takes windows from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Creates a table laid out for this limiter, on-demand billing, with TTL on
    /// `expires_at`. An existing table of that name is left as it is.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when DynamoDB cannot be reached;
    /// [`RateLimitError::Backend`] when it refuses.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), RateLimitError> {
        let request = client
            .create_table()
            .table_name(table)
            .attribute_definitions(attribute(PK, ScalarAttributeType::S).map_err(backend)?)
            .attribute_definitions(attribute(SK, ScalarAttributeType::N).map_err(backend)?)
            .key_schema(dynamodb::key(PK, KeyType::Hash).map_err(backend)?)
            .key_schema(dynamodb::key(SK, KeyType::Range).map_err(backend)?)
            .billing_mode(BillingMode::PayPerRequest);
        dynamodb::create_table(client, request, EXPIRES).await
    }

    fn item_key(&self, key: &str, window: Window) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (
                PK.to_owned(),
                AttributeValue::S(format!(
                    "{}#{}#{}",
                    self.prefix,
                    self.quota.window_millis(),
                    key
                )),
            ),
            (SK.to_owned(), AttributeValue::N(window.index.to_string())),
        ])
    }

    fn expires_at(&self, now_ms: i64, window: Window) -> AttributeValue {
        let end_ms =
            now_ms.saturating_add_unsigned(window.millis_to_reset + self.quota.window_millis());
        AttributeValue::N(end_ms.div_euclid(1000).to_string())
    }

    /// The units spent in `key`'s window, by a consistent read.
    async fn read_count(&self, key: &str, window: Window) -> Result<u64, RateLimitError> {
        let output = self
            .client
            .get_item()
            .table_name(&*self.table)
            .set_key(Some(self.item_key(key, window)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(count_of(output.item()))
    }

    /// `ADD count :delta`, under `condition` if given; the count after, or `None` when the
    /// condition failed (with the count then, if the service returned it).
    async fn add(
        &self,
        key: &str,
        window: Window,
        now_ms: i64,
        delta: i64,
        condition: Option<(&str, u64)>,
    ) -> Result<Result<u64, Option<u64>>, RateLimitError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&*self.table)
            .set_key(Some(self.item_key(key, window)))
            .update_expression("ADD #count :delta SET #expires = :expires")
            .expression_attribute_names("#count", COUNT)
            .expression_attribute_names("#expires", EXPIRES)
            .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()))
            .expression_attribute_values(":expires", self.expires_at(now_ms, window))
            .return_values(ReturnValue::UpdatedNew);
        if let Some((expression, bound)) = condition {
            request = request
                .condition_expression(expression)
                .expression_attribute_values(":bound", AttributeValue::N(bound.to_string()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
        }
        match request.send().await {
            Ok(output) => Ok(Ok(count_of(output.attributes()))),
            Err(SdkError::ServiceError(e)) if !e.raw().status().is_server_error() => {
                match e.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(failed) => {
                        Ok(Err(failed.item().map(|item| count_of(Some(item)))))
                    }
                    other => Err(RateLimitError::classified(
                        BACKEND,
                        other.code().is_some_and(is_transient_code),
                        Box::new(other),
                    )),
                }
            }
            Err(other) => Err(classify(other)),
        }
    }

    fn position(&self) -> (i64, Window) {
        let now_ms = self.clock.now_millis();
        (now_ms, self.quota.window_at(now_ms))
    }
}

fn count_of(item: Option<&HashMap<String, AttributeValue>>) -> u64 {
    item.and_then(|i| i.get(COUNT))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .map_or(0, |n| n.max(0).unsigned_abs())
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> RateLimitError {
    RateLimitError::failed(BACKEND, Box::new(error))
}

/// Maps the SDK's errors to [`RateLimitError`] by the rules both DynamoDB backends share:
/// no answer (dispatch, timeout, a broken response), any 5xx, throttling or a transaction
/// conflict is `Unavailable`; the rest `Backend`.
fn classify<E>(error: SdkError<E, HttpResponse>) -> RateLimitError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    dynamodb::classify(error)
}

#[async_trait]
impl RateLimiter for DynamoDbRateLimiter {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn quota(&self) -> Quota {
        self.quota
    }

    async fn check(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        validate_key(key)?;
        self.layers.check_cost(cost)?;
        if !self.single {
            return self.run_layered(Mode::Check, key, cost).await;
        }
        let (now_ms, window) = self.position();
        if cost == 0 {
            let used = self.read_count(key, window).await?;
            return Ok(self.quota.decide(used, 0, window).0);
        }
        let bound = self.quota.limit() - cost;
        let condition = "attribute_not_exists(#count) OR #count <= :bound";
        let delta = i64::try_from(cost).unwrap_or(i64::MAX);
        match self
            .add(key, window, now_ms, delta, Some((condition, bound)))
            .await?
        {
            Ok(used) => Ok(self.quota.decision(true, used, window)),
            Err(Some(used)) => Ok(self.quota.decision(false, used, window)),
            Err(None) => {
                let used = self.read_count(key, window).await?;
                Ok(self.quota.decision(false, used, window))
            }
        }
    }

    async fn charge(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        validate_key(key)?;
        if !self.single {
            return self.run_layered(Mode::Charge, key, cost).await;
        }
        let (now_ms, window) = self.position();
        let delta = i64::try_from(cost).unwrap_or(i64::MAX);
        let used = match self.add(key, window, now_ms, delta, None).await? {
            Ok(used) | Err(Some(used)) => used,
            Err(None) => self.read_count(key, window).await?,
        };
        Ok(self
            .quota
            .decision(used <= self.quota.limit(), used, window))
    }

    async fn refund(&self, key: &str, cost: u64) -> Result<(), RateLimitError> {
        validate_key(key)?;
        if !self.single {
            return self.run_layered(Mode::Refund, key, cost).await.map(|_| ());
        }
        if cost == 0 {
            return Ok(());
        }
        let (now_ms, window) = self.position();
        // Give back `cost` if that much was spent, else whatever was spent; a concurrent
        // change between the two attempts only means trying again with the new count.
        let mut back = cost;
        for _ in 0..4 {
            let delta = -i64::try_from(back).unwrap_or(i64::MAX);
            let condition = "#count >= :bound";
            match self
                .add(key, window, now_ms, delta, Some((condition, back)))
                .await?
            {
                Ok(_) => return Ok(()),
                Err(known) => {
                    let used = match known {
                        Some(used) => used,
                        None => self.read_count(key, window).await?,
                    };
                    if used == 0 {
                        return Ok(());
                    }
                    back = used.min(cost);
                }
            }
        }
        Err(RateLimitError::Unavailable {
            backend: BACKEND,
            source: "the count kept changing during a refund".into(),
        })
    }

    /// One `DescribeTable` of the limiter's table: a table that is missing is a
    /// [`RateLimitError::Backend`] error, an endpoint that does not answer
    /// [`RateLimitError::Unavailable`].
    async fn ping(&self) -> Result<(), RateLimitError> {
        self.client
            .describe_table()
            .table_name(&*self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}
