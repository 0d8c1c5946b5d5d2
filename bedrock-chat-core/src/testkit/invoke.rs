//! InvokeModel and InvokeModelWithResponseStream with Anthropic Messages bodies
//! (`anthropic_version`, `max_tokens`, `messages`, ...), answered in Anthropic's format.

use serde_json::{json, Value};

use super::converse::{check_max_tokens, check_unit_range, message_blocks, Limits};
use super::plan::{tokens_for, Ask, Content, Plan};
use super::stream::Frames;
use super::wire::event_frame;

fn malformed(what: &str) -> String {
    format!("Malformed input request: #: {what}, please reformat your input and try again.")
}

/// The text of an Anthropic `content` (a string or a list of blocks), and the characters
/// of its other blocks.
fn content_text(content: &Value) -> (String, usize) {
    match content {
        Value::String(s) => (s.clone(), 0),
        Value::Array(blocks) => {
            let mut text = String::new();
            let mut other = 0;
            for block in blocks {
                match block.get("text").and_then(Value::as_str) {
                    Some(t) => text.push_str(t),
                    None => other += block.to_string().chars().count(),
                }
            }
            (text, other)
        }
        _ => (String::new(), 0),
    }
}

/// Checks an Anthropic Messages body as Bedrock and Anthropic do.
///
/// # Errors
/// The `ValidationException` message.
pub(crate) fn read_request(body: &Value, limits: Limits) -> Result<Ask, String> {
    if !body.is_object() {
        return Err("Malformed input request, please reformat your input and try again.".into());
    }
    for key in ["anthropic_version", "max_tokens", "messages"] {
        if body.get(key).is_none() {
            return Err(malformed(&format!("required key [{key}] not found")));
        }
    }
    let mut ask = Ask {
        max_tokens: check_max_tokens(body.get("max_tokens"), limits)?,
        ..Default::default()
    };
    check_unit_range(body.get("temperature"), "temperature")?;
    check_unit_range(body.get("top_p"), "top_p")?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("subject must not be valid against schema"))?;
    let mut previous: Option<&str> = None;
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if i == 0 && role != "user" {
            return Err("messages: first message must use the \"user\" role".into());
        }
        if role != "user" && role != "assistant" {
            return Err(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            ));
        }
        if previous == Some(role) {
            return Err(format!(
                "messages: roles must alternate between \"user\" and \"assistant\", but found \
                 multiple \"{role}\" roles in a row"
            ));
        }
        previous = Some(role);
        let (text, other) = content_text(message.get("content").unwrap_or(&Value::Null));
        if text.trim().is_empty() && other == 0 {
            return Err(format!(
                "messages.{i}: all messages must have non-empty content except for the optional \
                 final assistant message"
            ));
        }
        ask.input_chars += text.chars().count() + other;
        if role == "user" {
            ask.last_user_text = text;
        }
    }
    if messages.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    if let Some(system) = body.get("system") {
        ask.input_chars += content_text(system).0.chars().count();
    }
    if body.pointer("/tool_choice/type").and_then(Value::as_str) == Some("tool") {
        ask.forced_tool = body
            .pointer("/tool_choice/name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        ask.forced_tool_schema = ask.forced_tool.as_deref().and_then(|name| {
            body.get("tools")?
                .as_array()?
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some(name))?
                .get("input_schema")
                .cloned()
        });
    }
    if tokens_for(ask.input_chars) > limits.context_window_tokens {
        return Err("Input is too long for requested model.".into());
    }
    Ok(ask)
}

/// Reads Anthropic's `thinking` setting into `ask` and checks it as Bedrock does: a model
/// that thinks, a budget of at least 1,024 tokens and under `max_tokens`, no forced tool;
/// and thinking blocks sent back must carry their signature, to a model that thinks.
///
/// # Errors
/// The `ValidationException` message.
pub(crate) fn read_thinking(body: &Value, model_id: &str, ask: &mut Ask) -> Result<(), String> {
    let thinks = crate::bedrock::config::reasons(model_id);
    for block in message_blocks(body) {
        match block.get("type").and_then(Value::as_str) {
            Some("thinking" | "redacted_thinking") if !thinks => {
                return Err(format!(
                    "The model {model_id} does not support thinking blocks."
                ))
            }
            Some("thinking")
                if block
                    .get("signature")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty) =>
            {
                return Err(
                    "messages: thinking blocks must keep the signature the model gave them".into(),
                )
            }
            _ => {}
        }
    }
    let Some(thinking) = body.get("thinking") else {
        return Ok(());
    };
    if thinking.get("type").and_then(Value::as_str) != Some("enabled") {
        return Ok(());
    }
    if !thinks {
        return Err(format!(
            "The model {model_id} does not support extended thinking."
        ));
    }
    let budget = thinking
        .get("budget_tokens")
        .and_then(Value::as_u64)
        .ok_or_else(|| malformed("thinking: required key [budget_tokens] not found"))?;
    if budget < 1024 {
        return Err(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024".into(),
        );
    }
    if ask.max_tokens.is_some_and(|max| budget >= max) {
        return Err("`max_tokens` must be greater than `thinking.budget_tokens`".into());
    }
    if ask.forced_tool.is_some() {
        return Err("Thinking may not be enabled when tool_choice forces tool use.".into());
    }
    ask.reasoning_budget = Some(budget);
    Ok(())
}

fn message_id() -> String {
    format!("msg_bdrk_{}", uuid::Uuid::new_v4().simple())
}

fn tool_use_id() -> String {
    format!("toolu_bdrk_{}", uuid::Uuid::new_v4().simple())
}

/// The reasoning blocks of an answer: redacted, then signed (Anthropic's `redacted_thinking`
/// and `thinking`).
fn thinking_blocks(plan: &Plan) -> Vec<Value> {
    let redacted = plan.redacted_reasoning.as_ref().map(|data| {
        json!({ "type": "redacted_thinking", "data": aws_smithy_types::base64::encode(data) })
    });
    let signed = plan
        .reasoning
        .as_ref()
        .map(|r| json!({ "type": "thinking", "thinking": r.text(), "signature": r.signature }));
    redacted.into_iter().chain(signed).collect()
}

/// The InvokeModel answer: Anthropic's message JSON, its reasoning first.
pub(crate) fn answer(plan: &Plan, model_id: &str) -> Value {
    let block = match &plan.content {
        Content::Text { .. } => json!({ "type": "text", "text": plan.text() }),
        Content::ToolUse { name, input, .. } => json!({
            "type": "tool_use", "id": tool_use_id(), "name": name, "input": input
        }),
    };
    let mut content = thinking_blocks(plan);
    content.push(block);
    json!({
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model_id,
        "content": content,
        "stop_reason": plan.stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": plan.usage.input_tokens,
            "output_tokens": plan.usage.output_tokens
        }
    })
}

/// The headers InvokeModel adds: token counts and latency.
pub(crate) fn answer_headers(plan: &Plan) -> Vec<(&'static str, String)> {
    vec![
        (
            "x-amzn-bedrock-input-token-count",
            plan.usage.input_tokens.to_string(),
        ),
        (
            "x-amzn-bedrock-output-token-count",
            plan.usage.output_tokens.to_string(),
        ),
        (
            "x-amzn-bedrock-invocation-latency",
            plan.duration().as_millis().to_string(),
        ),
    ]
}

/// One `chunk` event: the Anthropic event's JSON, base64-encoded in `bytes`.
fn chunk(event: &Value) -> Option<bytes::Bytes> {
    let encoded = aws_smithy_types::base64::encode(event.to_string());
    event_frame("chunk", &json!({ "bytes": encoded }))
}

/// Anthropic events sent as one piece of a stream, each in its chunk.
fn chunks(events: &[Value]) -> bytes::Bytes {
    let mut out = bytes::BytesMut::new();
    for frame in events.iter().filter_map(chunk) {
        out.extend_from_slice(&frame);
    }
    out.freeze()
}

/// The InvokeModelWithResponseStream events, Anthropic's streaming events in chunks: the
/// reasoning's blocks first (a `redacted_thinking` block whole; a `thinking` block's
/// `thinking_delta`s, then its `signature_delta`), then the answer's block.
pub(crate) fn stream_frames(plan: &Plan, model_id: &str) -> Frames {
    let block = match &plan.content {
        Content::Text { .. } => json!({ "type": "text", "text": "" }),
        Content::ToolUse { name, .. } => json!({
            "type": "tool_use", "id": tool_use_id(), "name": name, "input": {}
        }),
    };
    let start = [json!({
        "type": "message_start",
        "message": {
            "id": message_id(), "type": "message", "role": "assistant", "model": model_id,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": plan.usage.input_tokens, "output_tokens": 1 }
        }
    })];
    let block_start = |index: usize, block: Value| json!({ "type": "content_block_start", "index": index, "content_block": block });
    let block_delta = |index: usize, delta: Value| json!({ "type": "content_block_delta", "index": index, "delta": delta });
    let block_stop = |index: usize| json!({ "type": "content_block_stop", "index": index });
    let mut deltas = Vec::new();
    let mut index = 0;
    if let Some(data) = &plan.redacted_reasoning {
        let block =
            json!({ "type": "redacted_thinking", "data": aws_smithy_types::base64::encode(data) });
        deltas.push(chunks(&[block_start(index, block), block_stop(index)]));
        index += 1;
    }
    if let Some(reasoning) = &plan.reasoning {
        let last = reasoning.deltas.len().saturating_sub(1);
        for (k, piece) in reasoning.deltas.iter().enumerate() {
            let mut events = Vec::new();
            if k == 0 {
                events.push(block_start(
                    index,
                    json!({ "type": "thinking", "thinking": "" }),
                ));
            }
            events.push(block_delta(
                index,
                json!({ "type": "thinking_delta", "thinking": piece }),
            ));
            if k == last {
                let signature =
                    json!({ "type": "signature_delta", "signature": reasoning.signature });
                events.extend([block_delta(index, signature), block_stop(index)]);
            }
            deltas.push(chunks(&events));
        }
        index += 1;
    }
    for (k, piece) in plan.deltas().iter().enumerate() {
        let delta = match &plan.content {
            Content::Text { .. } => json!({ "type": "text_delta", "text": piece }),
            Content::ToolUse { .. } => json!({ "type": "input_json_delta", "partial_json": piece }),
        };
        let mut events = Vec::new();
        if k == 0 {
            events.push(block_start(index, block.clone()));
        }
        events.push(block_delta(index, delta));
        deltas.push(chunks(&events));
    }
    let latency = plan.duration().as_millis() as u64;
    let opened = (plan.deltas().is_empty()).then(|| block_start(index, block));
    let end: Vec<Value> = opened
        .into_iter()
        .chain([block_stop(index)])
        .chain([
            json!({
                "type": "message_delta",
                "delta": { "stop_reason": plan.stop_reason, "stop_sequence": null },
                "usage": { "output_tokens": plan.usage.output_tokens }
            }),
            json!({
                "type": "message_delta",
                "delta": { "stop_reason": plan.stop_reason, "stop_sequence": null },
                "usage": { "output_tokens": plan.usage.output_tokens }
            }),
            json!({
                "type": "message_stop",
                "amazon-bedrock-invocationMetrics": {
                    "inputTokenCount": plan.usage.input_tokens,
                    "outputTokenCount": plan.usage.output_tokens,
                    "invocationLatency": latency,
                    "firstByteLatency": plan.time_to_first_token.as_millis() as u64
                }
            }),
        ])
        .collect();
    Frames {
        start: start.iter().filter_map(chunk).collect(),
        deltas,
        end: end.iter().filter_map(chunk).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_output_tokens: 4096,
        context_window_tokens: 1000,
    };

    #[test]
    fn an_anthropic_body_is_read() {
        let ask = read_request(
            &json!({
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 100,
                "system": "be brief",
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
                    {"role": "user", "content": [{"type": "text", "text": "again"}]}
                ]
            }),
            LIMITS,
        )
        .unwrap();
        assert_eq!(ask.last_user_text, "again");
        assert_eq!(ask.max_tokens, Some(100));
        assert_eq!(ask.input_chars, 2 + 5 + 5 + 8);
    }

    #[test]
    fn a_body_without_max_tokens_is_malformed() {
        let error = read_request(
            &json!({"anthropic_version": "bedrock-2023-05-31", "messages": []}),
            LIMITS,
        )
        .unwrap_err();
        assert!(
            error.contains("required key [max_tokens] not found"),
            "{error}"
        );
    }
}
