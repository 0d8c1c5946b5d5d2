//! The example tools the server and the CLI offer the model behind `--tool`: the current
//! time, and a lookup in the caller's own conversations.

use std::sync::Arc;

use async_trait::async_trait;
use bedrock_chat_core::tool::{Tool, ToolContext, ToolError};
use bedrock_chat_core::{HistoryStore, ListOptions};
use chrono::{FixedOffset, SecondsFormat, Utc};
use serde_json::{json, Value};

/// The tools `--tool` can turn on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExampleTool {
    /// `current_time`: the date and time now, in UTC or at a given offset.
    #[value(name = "current_time")]
    CurrentTime,
    /// `recent_conversations`: the titles of the caller's own latest conversations.
    #[value(name = "recent_conversations")]
    RecentConversations,
}

impl ExampleTool {
    /// The tool, reading from `store` where it reads history.
    pub fn build(self, store: &Arc<dyn HistoryStore>) -> Arc<dyn Tool> {
        match self {
            Self::CurrentTime => Arc::new(CurrentTime),
            Self::RecentConversations => Arc::new(RecentConversations {
                store: Arc::clone(store),
            }),
        }
    }
}

/// The current date and time.
pub struct CurrentTime;

#[async_trait]
impl Tool for CurrentTime {
    fn name(&self) -> &str {
        "current_time"
    }

    fn description(&self) -> &str {
        "The current date and time (RFC 3339), in UTC, or at a UTC offset such as +02:00 \
         when one is given. Use it whenever the answer depends on today's date or the time."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "utc_offset": {
                    "type": "string",
                    "description": "An offset from UTC such as +02:00 or -05:30; UTC when left out",
                    "pattern": "^[+-][0-9]{2}:[0-9]{2}$"
                }
            }
        })
    }

    async fn call(&self, _context: &ToolContext, input: Value) -> Result<Value, ToolError> {
        let now = Utc::now();
        let offset = match input.get("utc_offset").and_then(Value::as_str) {
            None => FixedOffset::east_opt(0).expect("0 is a valid offset"),
            Some(text) => parse_offset(text).ok_or_else(|| {
                ToolError::new(format!(
                    "utc_offset `{text}` is not an offset like +02:00 (from -23:59 to +23:59)"
                ))
            })?,
        };
        let local = now.with_timezone(&offset);
        Ok(json!({
            "now": local.to_rfc3339_opts(SecondsFormat::Secs, true),
            "weekday": local.format("%A").to_string(),
            "unix_seconds": now.timestamp(),
        }))
    }
}

/// `+HH:MM` or `-HH:MM` as an offset.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let sign = match text.get(..1)? {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let (hours, minutes) = text.get(1..)?.split_once(':')?;
    let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
    if hours > 23 || minutes > 59 || text.len() != 6 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// The caller's latest conversations, from the history store; another user's never show,
/// as the store answers for the caller only.
pub struct RecentConversations {
    store: Arc<dyn HistoryStore>,
}

/// The most conversations the lookup returns.
const MAX_CONVERSATIONS: u64 = 20;

#[async_trait]
impl Tool for RecentConversations {
    fn name(&self) -> &str {
        "recent_conversations"
    }

    fn description(&self) -> &str {
        "The user's own latest conversations with you, newest first: title, when it was last \
         used, how many messages it holds. Use it when the user refers to an earlier \
         conversation."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_CONVERSATIONS,
                    "description": "How many conversations (5 when left out)"
                }
            }
        })
    }

    async fn call(&self, context: &ToolContext, input: Value) -> Result<Value, ToolError> {
        let limit = match input.get("limit") {
            None | Some(Value::Null) => 5,
            Some(limit) => limit
                .as_u64()
                .filter(|n| (1..=MAX_CONVERSATIONS).contains(n))
                .ok_or_else(|| {
                    ToolError::new(format!(
                        "limit must be a whole number from 1 to {MAX_CONVERSATIONS}"
                    ))
                })?,
        };
        // The conversation asking is left out: the model has it already.
        let page = self
            .store
            .list_conversations(&context.user, ListOptions::first(limit as u32 + 1))
            .await
            .map_err(|e| ToolError::new(format!("the history could not be read: {e}")))?;
        let conversations: Vec<Value> = page
            .items
            .iter()
            .filter(|c| c.id != context.chat_id)
            .take(limit as usize)
            .map(|c| {
                json!({
                    "title": c.title,
                    "updated_at": c.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    "messages": c.message_count,
                })
            })
            .collect();
        Ok(json!({ "conversations": conversations }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_within_a_day_and_nothing_else() {
        assert_eq!(
            parse_offset("+02:00").map(|o| o.local_minus_utc()),
            Some(7200)
        );
        assert_eq!(
            parse_offset("-05:30").map(|o| o.local_minus_utc()),
            Some(-19800)
        );
        for bad in [
            "02:00", "+24:00", "+02:60", "+2:00", "+02:000", "", "+", "x02:00",
        ] {
            assert_eq!(parse_offset(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn current_time_answers_at_an_offset_and_refuses_a_bad_one() {
        let context = ToolContext::new(
            bedrock_chat_core::UserId::new("ada").unwrap(),
            bedrock_chat_core::ChatId::new(),
        );
        let at = CurrentTime
            .call(&context, json!({"utc_offset": "+02:00"}))
            .await
            .unwrap();
        assert!(at["now"].as_str().unwrap().ends_with("+02:00"), "{at}");
        let utc = CurrentTime.call(&context, json!({})).await.unwrap();
        assert!(utc["now"].as_str().unwrap().ends_with('Z'), "{utc}");
        let refused = CurrentTime
            .call(&context, json!({"utc_offset": "noon"}))
            .await
            .unwrap_err();
        assert!(refused.message().contains("noon"));
    }
}
