//! Tools the model may call during a send: the [`Tool`] trait a host implements, and the
//! shapes of a call and its result.
//!
//! Register tools with [`ChatServiceBuilder::tool`](crate::ChatServiceBuilder::tool); the
//! service then offers them to the model on every send and runs the tool loop: the model
//! asks for calls, the service runs them (at most
//! [`ChatPolicy::max_tool_rounds`](crate::ChatPolicy::max_tool_rounds) rounds, each call
//! within [`ChatPolicy::tool_timeout`](crate::ChatPolicy::tool_timeout)), and the model
//! continues with the results. Calls and results are stored in the reply as
//! [`Part::ToolUse`] and [`Part::ToolResult`] parts, in order, so the next turn sends them
//! back as Bedrock requires.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ChatId, UserId};
use crate::model::ModelMessage;
use crate::parts::Part;
use crate::types::Role;

/// A tool the model may call.
///
/// ```
/// use async_trait::async_trait;
/// use bedrock_chat_core::tool::{Tool, ToolContext, ToolError};
/// use serde_json::{json, Value};
///
/// struct Add;
///
/// #[async_trait]
/// impl Tool for Add {
///     fn name(&self) -> &str {
///         "add"
///     }
///     fn description(&self) -> &str {
///         "Adds two numbers."
///     }
///     fn input_schema(&self) -> Value {
///         json!({
///             "type": "object",
///             "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
///             "required": ["a", "b"]
///         })
///     }
///     async fn call(&self, _context: &ToolContext, input: Value) -> Result<Value, ToolError> {
///         let number = |key: &str| {
///             input[key]
///                 .as_f64()
///                 .ok_or_else(|| ToolError::new(format!("`{key}` must be a number")))
///         };
///         Ok(json!({"sum": number("a")? + number("b")?}))
///     }
/// }
/// ```
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// The name the model calls it by: letters, digits, `_` and `-`, at most 64
    /// characters (Bedrock's rule).
    fn name(&self) -> &str;

    /// What it does and when to use it; the model reads this to decide.
    fn description(&self) -> &str;

    /// A JSON Schema (an object schema) for its input.
    fn input_schema(&self) -> Value;

    /// Runs the tool. A string result goes to the model as text, anything else as JSON.
    ///
    /// # Errors
    /// A [`ToolError`], which goes back to the model as an error result (the model may
    /// try again or answer without the tool); it does not fail the send.
    async fn call(&self, context: &ToolContext, input: Value) -> Result<Value, ToolError>;
}

/// Who a tool runs for: a tool that reads data must read only this user's.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolContext {
    /// The user whose send asked for the call.
    pub user: UserId,
    /// The conversation.
    pub chat_id: ChatId,
    /// The host's request id, when it gave one.
    pub request_id: Option<String>,
}

impl ToolContext {
    /// The context of a call for `user` in `chat_id`.
    pub fn new(user: UserId, chat_id: ChatId) -> Self {
        Self {
            user,
            chat_id,
            request_id: None,
        }
    }
}

/// Why a tool could not answer; the model reads the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolError {
    message: String,
}

impl ToolError {
    /// An error with this message for the model.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {}

/// A tool as the model sees it: name, description, input schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The tool's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its input's JSON Schema.
    pub input_schema: Value,
}

impl ToolSpec {
    /// The spec of `tool`.
    pub fn of(tool: &dyn Tool) -> Self {
        Self {
            name: tool.name().to_owned(),
            description: tool.description().to_owned(),
            input_schema: tool.input_schema(),
        }
    }
}

/// A call the model asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The model's id of the call; its result must carry it.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The input, which should fit the tool's schema.
    pub input: Value,
}

impl ToolCall {
    /// The call as a [`Part::ToolUse`].
    pub fn to_part(&self) -> Part {
        Part::ToolUse {
            id: self.id.clone(),
            name: self.name.clone(),
            input: self.input.clone(),
        }
    }
}

/// A stored reply's parts as the turns the model must see: a reply that called tools
/// holds, in order, each round's assistant parts (reasoning, text, calls) followed by the
/// results of those calls, which go back as a user turn. `turn` is returned as it is when
/// it holds no tool result.
///
/// ```
/// use bedrock_chat_core::tool::split_tool_rounds;
/// use bedrock_chat_core::{ModelMessage, Part, Role};
/// use serde_json::json;
///
/// let reply = ModelMessage::assistant("").with_parts(vec![
///     Part::ToolUse { id: "t1".into(), name: "clock".into(), input: json!({}) },
///     Part::ToolResult { tool_use_id: "t1".into(), output: json!("noon"), is_error: false },
///     Part::text("It is noon."),
/// ]);
/// let turns = split_tool_rounds(reply);
/// let roles: Vec<Role> = turns.iter().map(|t| t.role).collect();
/// assert_eq!(roles, [Role::Assistant, Role::User, Role::Assistant]);
/// assert_eq!(turns[2].content, "It is noon.");
/// ```
pub fn split_tool_rounds(turn: ModelMessage) -> Vec<ModelMessage> {
    let is_result = |part: &Part| matches!(part, Part::ToolResult { .. });
    if turn.role != Role::Assistant || !turn.parts.iter().any(is_result) {
        return vec![turn];
    }
    let mut turns = Vec::new();
    let mut role = Role::Assistant;
    let mut current = Vec::new();
    for part in turn.parts {
        let part_role = if is_result(&part) {
            Role::User
        } else {
            Role::Assistant
        };
        if part_role != role && !current.is_empty() {
            turns.push(turn_of(role, std::mem::take(&mut current)));
        }
        role = part_role;
        current.push(part);
    }
    if !current.is_empty() {
        turns.push(turn_of(role, current));
    }
    turns
}

fn turn_of(role: Role, parts: Vec<Part>) -> ModelMessage {
    ModelMessage {
        role,
        content: String::new(),
        parts: Vec::new(),
    }
    .with_parts(parts)
}

/// Whether `question` names the tool `name` (`current_time` as "current time" too), as
/// the offline model and FakeBedrock decide which offered tool to call.
pub(crate) fn names_tool(question: &str, name: &str) -> bool {
    let asked = question.to_lowercase();
    let name = name.to_lowercase();
    asked.contains(&name) || asked.contains(&name.replace(['_', '-'], " "))
}

/// Whether `parts` hold a tool call or a tool result.
pub(crate) fn has_tool_parts(parts: &[Part]) -> bool {
    parts
        .iter()
        .any(|part| matches!(part, Part::ToolUse { .. } | Part::ToolResult { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(id: &str) -> Part {
        Part::ToolUse {
            id: id.into(),
            name: "clock".into(),
            input: json!({}),
        }
    }

    fn result(id: &str) -> Part {
        Part::ToolResult {
            tool_use_id: id.into(),
            output: json!("noon"),
            is_error: false,
        }
    }

    #[test]
    fn a_plain_reply_is_one_turn() {
        let turn = ModelMessage::assistant("hi");
        assert_eq!(split_tool_rounds(turn.clone()), vec![turn]);
    }

    #[test]
    fn two_rounds_of_parallel_calls_alternate_and_keep_order() {
        let reply = ModelMessage::assistant("").with_parts(vec![
            Part::text("Checking."),
            call("a"),
            call("b"),
            result("a"),
            result("b"),
            call("c"),
            result("c"),
            Part::text("Done."),
        ]);
        let turns = split_tool_rounds(reply);
        let shape: Vec<(Role, usize)> = turns.iter().map(|t| (t.role, t.parts.len())).collect();
        assert_eq!(
            shape,
            [
                (Role::Assistant, 3),
                (Role::User, 2),
                (Role::Assistant, 1),
                (Role::User, 1),
                (Role::Assistant, 1)
            ]
        );
        assert_eq!(turns[0].content, "Checking.");
    }

    #[test]
    fn a_reply_that_ends_with_results_ends_with_a_user_turn() {
        let reply = ModelMessage::assistant("").with_parts(vec![call("a"), result("a")]);
        let turns = split_tool_rounds(reply);
        assert_eq!(turns.last().map(|t| t.role), Some(Role::User));
    }
}
