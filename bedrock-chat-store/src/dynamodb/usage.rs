//! The usage ledger (a day item and a total item per user) and the user's totals.

use bedrock_chat_core::store::check_usage_days;
use bedrock_chat_core::{DailyUsage, StoreError, Timestamp, Usage, UsageTotals, UserId};
use chrono::{Datelike, NaiveDate};

use super::items::{self, n, s, Item};
use super::table::{Outcome, UpdateExpression};
use super::{DynamoDbHistoryStore, BACKEND};

/// Tokens and calls added to a ledger item; the prompt-cache counts only when used, so
/// a ledger without caching stays as it was (absent reads as 0).
fn ledger_adds(usage: Usage) -> UpdateExpression {
    let mut adds = UpdateExpression::default()
        .add("in", n(usage.input_tokens))
        .add("out", n(usage.output_tokens))
        .add("total", n(usage.total_tokens))
        .add("calls", n(1));
    if usage.cache_read_tokens != 0 {
        adds = adds.add("cache_read", n(usage.cache_read_tokens));
    }
    if usage.cache_write_tokens != 0 {
        adds = adds.add("cache_write", n(usage.cache_write_tokens));
    }
    adds
}

fn ledger_usage(item: &Item) -> Result<(Usage, u64), StoreError> {
    let usage = Usage {
        input_tokens: items::get_sum(item, "in")?,
        output_tokens: items::get_sum(item, "out")?,
        total_tokens: items::get_sum(item, "total")?,
        cache_read_tokens: items::get_sum(item, "cache_read")?,
        cache_write_tokens: items::get_sum(item, "cache_write")?,
    };
    Ok((usage, items::get_sum(item, "calls")?))
}

impl DynamoDbHistoryStore {
    pub(super) async fn record_usage_items(
        &self,
        user: &UserId,
        at: Timestamp,
        usage: Usage,
    ) -> Result<(), StoreError> {
        let day = at.date_naive();
        // The day item says which day it is, for reading back; ADD creates both items on
        // the first call and adds atomically after, so concurrent calls each count once.
        let day_update = ledger_adds(usage)
            .set("day", n(day.num_days_from_ce()))
            .set("date", s(day.to_string()));
        let writes = vec![
            self.update(items::day_key(user, day), day_update, None)?,
            self.update(items::total_key(user), ledger_adds(usage), None)?,
        ];
        match self.transact(writes).await? {
            Outcome::Committed => Ok(()),
            // The conditions always hold; a failure here is DynamoDB misbehaving.
            Outcome::ConditionFailed(_) => Err(StoreError::Backend {
                backend: BACKEND,
                source: "a usage ledger update without conditions failed its condition".into(),
            }),
        }
    }

    pub(super) async fn daily_usage_items(
        &self,
        user: &UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        check_usage_days(from, to)?;
        let found = self
            .query(
                || {
                    self.client
                        .query()
                        .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                        .expression_attribute_values(":pk", items::user_pk(user))
                        .expression_attribute_values(":from", s(items::day_sk(from)))
                        .expression_attribute_values(":to", s(items::day_sk(to)))
                },
                usize::MAX,
            )
            .await?;
        found
            .iter()
            .map(|item| {
                let (usage, calls) = ledger_usage(item)?;
                Ok(DailyUsage {
                    day: items::get_day(item)?,
                    usage,
                    calls,
                })
            })
            .collect()
    }

    pub(super) async fn usage_totals(&self, user: &UserId) -> Result<UsageTotals, StoreError> {
        let conversations = self
            .query(
                || {
                    self.client
                        .query()
                        .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
                        .expression_attribute_values(":pk", items::user_pk(user))
                        .expression_attribute_values(":c", s("C#"))
                        .projection_expression("#count")
                        .expression_attribute_names("#count", "count")
                },
                usize::MAX,
            )
            .await?;
        let mut totals = UsageTotals::default();
        for item in &conversations {
            totals.conversations += 1;
            totals.messages += items::get_n::<u64>(item, "count")?;
        }
        if let Some(total) = self.get_item(items::total_key(user)).await? {
            (totals.usage, totals.calls) = ledger_usage(&total)?;
        }
        Ok(totals)
    }
}
