//! Several [`Layers`] in one DynamoDB transaction.
//!
//! A decision reads every layer's count (one `TransactGetItems`, a consistent snapshot),
//! applies the layered rule, and writes the new counts in one `TransactWriteItems` whose
//! every update is conditioned on the count it read: all layers change, or none. A
//! condition that fails (another request changed a count in between) or a transaction
//! conflict means reading again, after a short jittered pause; a refusal, a zero-cost
//! check or a refund of nothing is the read alone. Because the count written is the count
//! read plus the cost, the decision reports exact `remaining` values, as the single-layer
//! `UpdateItem` does.
//!
//! Contention costs retries: each retry means another request's transaction committed, so
//! every request eventually decides, but a layer shared by many callers at a high rate is
//! better served by the Redis limiter.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Get, TransactGetItem, TransactWriteItem, Update};
use bedrock_chat_core::backend::dynamodb::{cancellation, is_throttling_code, Cancelled};
use bedrock_chat_core::limiter::{validate_key, Window};
use bedrock_chat_core::{Decision, Quota, RateLimitError};

use super::{backend, classify, count_of, DynamoDbRateLimiter, BACKEND, COUNT, EXPIRES, PK, SK};
use crate::layered::{decide_layers, no_layers, LayerScope, Mode};

/// Reads and conditional writes before a decision gives up as `Unavailable`.
const MAX_ATTEMPTS: u32 = 50;

/// How a transaction ended.
enum Outcome<T> {
    Done(T),
    /// A condition failed, a transaction conflicted or DynamoDB throttled: read again.
    Retry,
}

impl DynamoDbRateLimiter {
    /// The item of layer `index` for `key` in `window`:
    /// `{prefix}#{index}#{window_ms}#{k|s}#{key or shared name}`.
    fn layer_item_key(
        &self,
        index: usize,
        scope: &LayerScope,
        quota: &Quota,
        key: &str,
        window: Window,
    ) -> HashMap<String, AttributeValue> {
        let (kind, name) = match scope {
            LayerScope::PerKey => ("k", key),
            LayerScope::Shared(name) => ("s", name.as_str()),
        };
        HashMap::from([
            (
                PK.to_owned(),
                AttributeValue::S(format!(
                    "{}#{index}#{}#{kind}#{name}",
                    self.prefix,
                    quota.window_millis()
                )),
            ),
            (SK.to_owned(), AttributeValue::N(window.index.to_string())),
        ])
    }

    /// A layered decision: read, decide, write conditionally; again on contention.
    pub(super) async fn run_layered(
        &self,
        mode: Mode,
        key: &str,
        cost: u64,
    ) -> Result<Decision, RateLimitError> {
        validate_key(key)?;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(pause(attempt)).await;
            }
            let now_ms = self.clock.now_millis();
            let layers = self.layers.as_slice();
            let positions: Vec<(Quota, Window)> = layers
                .iter()
                .map(|layer| (layer.quota, layer.quota.window_at(now_ms)))
                .collect();
            let items: Vec<HashMap<String, AttributeValue>> = layers
                .iter()
                .zip(&positions)
                .enumerate()
                .map(|(i, (layer, (quota, window)))| {
                    self.layer_item_key(i, &layer.scope, quota, key, *window)
                })
                .collect();
            let Outcome::Done(used) = self.read_counts(&items).await? else {
                continue;
            };
            let (decision, after) =
                decide_layers(&positions, &used, mode, cost).ok_or_else(|| no_layers(BACKEND))?;
            if after == used {
                return Ok(decision);
            }
            let writes = items
                .into_iter()
                .zip(positions.iter().zip(used.iter().zip(&after)))
                .filter(|(_, (_, (before, after)))| before != after)
                .map(|(item, ((quota, window), (before, after)))| {
                    let expires = expires_at(quota, now_ms, *window);
                    conditional_set(&self.table, item, *before, *after, expires)
                })
                .collect::<Result<Vec<_>, _>>()?;
            if let Outcome::Done(()) = self.write_counts(writes).await? {
                return Ok(decision);
            }
        }
        Err(RateLimitError::Unavailable {
            backend: BACKEND,
            source: "the layered counts kept changing; too many concurrent requests".into(),
        })
    }

    /// Every layer's count, from one consistent snapshot.
    async fn read_counts(
        &self,
        items: &[HashMap<String, AttributeValue>],
    ) -> Result<Outcome<Vec<u64>>, RateLimitError> {
        let gets = items
            .iter()
            .map(|item| {
                Get::builder()
                    .table_name(&*self.table)
                    .set_key(Some(item.clone()))
                    .build()
                    .map(|get| TransactGetItem::builder().get(get).build())
                    .map_err(backend)
            })
            .collect::<Result<Vec<_>, _>>()?;
        match self
            .client
            .transact_get_items()
            .set_transact_items(Some(gets))
            .send()
            .await
        {
            Ok(output) => {
                let responses = output.responses();
                if responses.len() != items.len() {
                    return Err(RateLimitError::Backend {
                        backend: BACKEND,
                        source: "TransactGetItems answered a different number of items".into(),
                    });
                }
                Ok(Outcome::Done(
                    responses.iter().map(|r| count_of(r.item())).collect(),
                ))
            }
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    TransactGetItemsError::TransactionCanceledException(_)
                ) =>
            {
                Ok(Outcome::Retry)
            }
            Err(e) if e.code().is_some_and(is_throttling_code) => Ok(Outcome::Retry),
            Err(e) => Err(classify(e)),
        }
    }

    /// The conditional writes, all or none.
    async fn write_counts(
        &self,
        writes: Vec<TransactWriteItem>,
    ) -> Result<Outcome<()>, RateLimitError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        {
            Ok(_) => Ok(Outcome::Done(())),
            // Every count is conditioned on the one read: a failed condition means another
            // decision came first, as a conflict or throttling does; all mean read again.
            Err(e) => match cancellation(&e) {
                Some(Cancelled::Conditions(_) | Cancelled::Transient) => Ok(Outcome::Retry),
                Some(Cancelled::Other) => Err(backend(e)),
                None if e
                    .raw_response()
                    .is_some_and(|r| r.status().is_server_error()) =>
                {
                    Err(classify(e))
                }
                None if e.code().is_some_and(|code| {
                    code == "TransactionInProgressException" || is_throttling_code(code)
                }) =>
                {
                    Ok(Outcome::Retry)
                }
                None => Err(classify(e)),
            },
        }
    }
}

/// `SET count = :after` on `item`, on condition that the count is still `before`.
fn conditional_set(
    table: &str,
    item: HashMap<String, AttributeValue>,
    before: u64,
    after: u64,
    expires: AttributeValue,
) -> Result<TransactWriteItem, RateLimitError> {
    let condition = if before == 0 {
        // Never written, or refunded to zero.
        "attribute_not_exists(#count) OR #count = :before"
    } else {
        "#count = :before"
    };
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(item))
        .update_expression("SET #count = :after, #expires = :expires")
        .condition_expression(condition)
        .expression_attribute_names("#count", COUNT)
        .expression_attribute_names("#expires", EXPIRES)
        .expression_attribute_values(":before", AttributeValue::N(before.to_string()))
        .expression_attribute_values(":after", AttributeValue::N(after.to_string()))
        .expression_attribute_values(":expires", expires)
        .build()
        .map_err(backend)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Epoch seconds a window after `window` ends: the TTL attribute.
fn expires_at(quota: &Quota, now_ms: i64, window: Window) -> AttributeValue {
    let end_ms = now_ms.saturating_add_unsigned(window.millis_to_reset + quota.window_millis());
    AttributeValue::N(end_ms.div_euclid(1000).to_string())
}

/// A jittered pause before attempt `attempt` (1 or more): up to 1, 2, 4 ... 32 ms, so
/// that requests that collided do not collide again in step.
fn pause(attempt: u32) -> Duration {
    let ceiling_us = 1_000u64 << attempt.min(6).saturating_sub(1);
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    Duration::from_micros(random % ceiling_us + 1)
}
