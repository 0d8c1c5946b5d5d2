//! Reads and writes of the table's items, shared by every operation: transactions that
//! read their cancellation reasons and retry what is transient, consistent batch reads,
//! paged queries.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, KeysAndAttributes, Put, TransactWriteItem, Update,
    WriteRequest,
};
use bedrock_chat_core::{ChatId, StoreError, Timestamp, UserId};

use super::error::{build_error, cancellation, classify, code, Cancelled};
use super::items::{self, n, s, Item};
use super::{DynamoDbHistoryStore, BACKEND};

/// Keys per BatchGetItem and writes per BatchWriteItem, as DynamoDB allows.
const BATCH_GET: usize = 100;
const BATCH_WRITE: usize = 25;

pub(super) const NOT_EXISTS: &str = "attribute_not_exists(pk)";
pub(super) const EXISTS: &str = "attribute_exists(pk)";

/// How a transaction ended, once transient cancellations were retried.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Every write was applied.
    Committed,
    /// Nothing was written: the conditions of these items (positions in the transaction)
    /// failed.
    ConditionFailed(Vec<usize>),
}

impl Outcome {
    /// Whether the condition of the item at `position` failed.
    pub(super) fn failed_at(&self, position: usize) -> bool {
        matches!(self, Self::ConditionFailed(failed) if failed.contains(&position))
    }
}

/// An update expression under construction: `SET`, `REMOVE` and `ADD` clauses with their
/// names and values. Every attribute name goes through a placeholder (COUNT, IN, OUT, TOTAL and DAY
/// are DynamoDB reserved words).
#[derive(Default)]
pub(super) struct UpdateExpression {
    sets: Vec<String>,
    removes: Vec<String>,
    adds: Vec<String>,
    pub(super) names: HashMap<String, String>,
    pub(super) values: HashMap<String, AttributeValue>,
}

impl UpdateExpression {
    /// `SET attribute = value`.
    pub(super) fn set(mut self, attribute: &str, value: AttributeValue) -> Self {
        self.names
            .insert(format!("#{attribute}"), attribute.to_owned());
        self.values.insert(format!(":{attribute}"), value);
        self.sets.push(format!("#{attribute} = :{attribute}"));
        self
    }

    /// `ADD attribute delta`.
    pub(super) fn add(mut self, attribute: &str, delta: AttributeValue) -> Self {
        self.names
            .insert(format!("#{attribute}"), attribute.to_owned());
        self.values.insert(format!(":{attribute}"), delta);
        self.adds.push(format!("#{attribute} :{attribute}"));
        self
    }

    /// `REMOVE attribute`.
    pub(super) fn remove(mut self, attribute: &str) -> Self {
        self.names
            .insert(format!("#{attribute}"), attribute.to_owned());
        self.removes.push(format!("#{attribute}"));
        self
    }

    /// A value only a condition uses.
    pub(super) fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    /// The expression's text.
    pub(super) fn text(&self) -> String {
        [
            ("SET", &self.sets),
            ("REMOVE", &self.removes),
            ("ADD", &self.adds),
        ]
        .into_iter()
        .filter(|(_, clauses)| !clauses.is_empty())
        .map(|(keyword, clauses)| format!("{keyword} {}", clauses.join(", ")))
        .collect::<Vec<_>>()
        .join(" ")
    }
}

impl DynamoDbHistoryStore {
    pub(super) fn expiry(&self, now: Timestamp) -> Option<AttributeValue> {
        self.ttl.map(|ttl| {
            let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
            n(now.timestamp().saturating_add(ttl))
        })
    }

    pub(super) fn put(
        &self,
        mut item: Item,
        condition: Option<&str>,
        now: Timestamp,
    ) -> Result<TransactWriteItem, StoreError> {
        if let Some(expiry) = self.expiry(now) {
            item.insert(items::EXPIRES.to_owned(), expiry);
        }
        let put = Put::builder()
            .table_name(&*self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    pub(super) fn delete(
        &self,
        key: Item,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&*self.table)
            .set_key(Some(key))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// An update of the item at `key` by `expression`, on `condition` if any.
    pub(super) fn update(
        &self,
        key: Item,
        expression: UpdateExpression,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&*self.table)
            .set_key(Some(key))
            .update_expression(expression.text())
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(Some(expression.names))
            .set_expression_attribute_values(
                Some(expression.values).filter(|values| !values.is_empty()),
            )
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// What a write to the conversation sets: its last activity (the listing key with
    /// it) and, with a TTL, its expiry.
    pub(super) fn touched(&self, chat: ChatId, now: Timestamp) -> UpdateExpression {
        let expression = UpdateExpression::default()
            .set("updated", n(now.timestamp_micros()))
            .set(items::UPDATED_KEY, s(items::updated_key(now, chat)));
        match self.expiry(now) {
            Some(expiry) => expression.set(items::EXPIRES, expiry),
            None => expression,
        }
    }

    /// An update of the conversation item, which must exist: its last activity set to
    /// `now`, and `count_delta` added to its message count.
    pub(super) fn touch_conversation(
        &self,
        user: &UserId,
        chat: ChatId,
        now: Timestamp,
        count_delta: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut expression = self.touched(chat, now);
        if count_delta != 0 {
            expression = expression.add("count", n(count_delta));
        }
        self.update(
            items::conversation_key(user, chat),
            expression,
            Some(EXISTS),
        )
    }

    /// Runs a transaction. A cancellation for conflicts with other transactions or for
    /// throttling is retried with backoff; failed conditions come back as
    /// [`Outcome::ConditionFailed`] with the items whose conditions failed.
    ///
    /// Retrying is safe: a cancelled transaction wrote nothing.
    pub(super) async fn transact(
        &self,
        writes: Vec<TransactWriteItem>,
    ) -> Result<Outcome, StoreError> {
        let mut retry = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(Outcome::Committed),
                Err(error) => error,
            };
            match cancellation(&error) {
                Some(Cancelled::Conditions(failed)) => return Ok(Outcome::ConditionFailed(failed)),
                Some(Cancelled::Transient) if retry + 1 < self.retry.max_attempts => {
                    tracing::debug!(retry, "DynamoDB cancelled a transaction; retrying");
                    self.retry.pause(retry).await;
                    retry += 1;
                }
                Some(Cancelled::Transient) => {
                    return Err(StoreError::Unavailable {
                        backend: BACKEND,
                        source: Box::new(error),
                    })
                }
                Some(Cancelled::Other) => {
                    return Err(StoreError::Backend {
                        backend: BACKEND,
                        source: Box::new(error),
                    })
                }
                None => return Err(classify(error)),
            }
        }
    }

    /// Sends a single-item write again while DynamoDB answers
    /// `TransactionConflictException` (the item is part of a transaction being committed;
    /// the SDK does not retry that), with the same bounded backoff as transactions.
    pub(super) async fn retry_conflicts<T, E, Fut>(
        &self,
        send: impl Fn() -> Fut,
    ) -> Result<T, SdkError<E, HttpResponse>>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata,
    {
        let mut retry = 0;
        loop {
            match send().await {
                Err(e)
                    if code(&e) == Some("TransactionConflictException")
                        && retry + 1 < self.retry.max_attempts =>
                {
                    tracing::debug!(
                        retry,
                        "DynamoDB write conflicted with a transaction; retrying"
                    );
                    self.retry.pause(retry).await;
                    retry += 1;
                }
                other => return other,
            }
        }
    }

    pub(super) async fn get_item(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&*self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(output.item().cloned())
    }

    /// Consistent reads of many keys; the items found, in no particular order. Keys
    /// DynamoDB leaves unprocessed (throttling) are asked for again after a backoff.
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET) {
            let mut pending = Some(chunk.to_vec());
            let mut round = 0;
            while let Some(keys) = pending.take().filter(|k| !k.is_empty()) {
                if round > 0 {
                    self.retry.pause(round - 1).await;
                }
                round += 1;
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(build_error)?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&*self.table, request)
                    .send()
                    .await
                    .map_err(classify)?;
                if let Some(items) = output.responses().and_then(|r| r.get(&*self.table)) {
                    found.extend(items.iter().cloned());
                }
                pending = output
                    .unprocessed_keys()
                    .and_then(|u| u.get(&*self.table))
                    .map(|k| k.keys().to_vec());
            }
        }
        Ok(found)
    }

    /// Deletes many keys; writes DynamoDB leaves unprocessed are sent again after a
    /// backoff.
    pub(super) async fn batch_delete(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        for chunk in keys.chunks(BATCH_WRITE) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|key| {
                    let delete = DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map_err(build_error)?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<Result<_, StoreError>>()?;
            let mut round = 0;
            while !pending.is_empty() {
                if round > 0 {
                    self.retry.pause(round - 1).await;
                }
                round += 1;
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&*self.table, pending)
                    .send()
                    .await
                    .map_err(classify)?;
                pending = output
                    .unprocessed_items()
                    .and_then(|u| u.get(&*self.table))
                    .cloned()
                    .unwrap_or_default();
            }
        }
        Ok(())
    }

    /// Runs a consistent query page after page until `want` items came back or none are
    /// left.
    pub(super) async fn query(
        &self,
        make: impl Fn() -> QueryFluentBuilder,
        want: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let limit = i32::try_from(want - out.len()).unwrap_or(i32::MAX);
            let output = make()
                .table_name(&*self.table)
                .consistent_read(true)
                .limit(limit)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            out.extend(output.items().iter().cloned());
            match output.last_evaluated_key() {
                Some(key) if out.len() < want => start = Some(key.clone()),
                _ => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_expressions_name_every_attribute() {
        let expression = UpdateExpression::default()
            .set("updated", n(1))
            .add("count", n(2))
            .add("in", n(3))
            .remove("prompt")
            .value(":expected", n(4));
        assert_eq!(
            expression.text(),
            "SET #updated = :updated REMOVE #prompt ADD #count :count, #in :in"
        );
        assert_eq!(expression.names.len(), 4);
        assert_eq!(expression.values.len(), 4);
        let adds_only = UpdateExpression::default().add("calls", n(1));
        assert_eq!(adds_only.text(), "ADD #calls :calls");
    }
}
