//! The Converse API: reading and validating a request as Bedrock does, and writing the
//! plain answer and the ConverseStream events.

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::plan::{Ask, CachePoint, Cited, Content, Plan};
use super::stream::Frames;
use super::wire::event_frame;
use crate::citation::first_passage;
use crate::context::{part_tokens, CharRatioEstimator};
use crate::parts::{DocumentFormat, ImageFormat, Part};
use crate::service::AttachmentLimits;

/// What the fake model accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The largest `maxTokens`.
    pub(crate) max_output_tokens: u64,
    /// The most input tokens (4 characters a token).
    pub(crate) context_window_tokens: u64,
}

/// Checks what every model's request must satisfy: a user first, alternating roles, no
/// empty content, numbers in range, a forced tool that exists, input that fits.
///
/// # Errors
/// The `ValidationException` message Bedrock gives.
pub(crate) fn read_request(body: &Value, limits: Limits) -> Result<Ask, String> {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Err(
            "1 validation error detected: Value null at 'messages' failed to satisfy \
                    constraint: Member must not be null"
                .into(),
        );
    };
    let mut ask = Ask::default();
    let mut prefix = Prefix::default();
    // The system prompt comes first in the prompt, and so in a cached prefix.
    if let Some(system) = body.get("system").and_then(Value::as_array) {
        for (j, block) in system.iter().enumerate() {
            if block.get("cachePoint").is_some() {
                ask.cache_points.push(prefix.cache_point(&ask));
                continue;
            }
            if let Some(t) = block.get("text").and_then(Value::as_str) {
                if t.trim().is_empty() {
                    return Err(format!(
                        "The text field in the SystemContentBlock object at system.{j} is \
                         blank. Add text to the text field, and try again."
                    ));
                }
                ask.input_chars += t.chars().count();
            }
            prefix.add(block, &ask);
        }
    }
    let mut attachments = Vec::new();
    let mut tool_turns = ToolTurns::new(body.get("toolConfig").is_some());
    let mut previous_role: Option<&str> = None;
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(format!(
                "1 validation error detected: Value '{role}' at 'messages.{i}.member.role' \
                 failed to satisfy constraint: Member must satisfy enum value set: \
                 [user, assistant]"
            ));
        }
        if i == 0 && role != "user" {
            return Err(must_start_with_user());
        }
        if previous_role == Some(role) {
            return Err(
                "A conversation must alternate between user and assistant roles. \
                        Make sure the conversation alternates between user and assistant \
                        roles and try again."
                    .into(),
            );
        }
        previous_role = Some(role);
        prefix.add(&json!({ "role": role }), &ask);
        let blocks = message
            .get("content")
            .and_then(Value::as_array)
            .filter(|blocks| !blocks.is_empty())
            .ok_or_else(|| {
                format!(
                    "The content field in the Message object at messages.{i} is empty. Add a \
                     ContentBlock object to the content field and try again."
                )
            })?;
        let mut text = String::new();
        tool_turns.check(role, blocks, i)?;
        for (j, block) in blocks.iter().enumerate() {
            if block.get("cachePoint").is_some() {
                ask.cache_points.push(prefix.cache_point(&ask));
                continue;
            }
            check_reasoning_block(block, i, j)?;
            if let Some(part) = attachment(block, i, j)? {
                ask.attachment_tokens += part_tokens(&CharRatioEstimator::default(), &part);
                attachments.push((i, j, part));
            } else {
                match block.get("text").and_then(Value::as_str) {
                    Some(t) if t.trim().is_empty() => {
                        return Err(format!(
                            "The text field in the ContentBlock object at \
                             messages.{i}.content.{j} is blank. Add text to the text field, \
                             and try again."
                        ))
                    }
                    Some(t) => {
                        text.push_str(t);
                        ask.input_chars += t.chars().count();
                    }
                    None => ask.input_chars += block.to_string().chars().count(),
                }
            }
            prefix.add(block, &ask);
        }
        if role == "user" {
            ask.last_user_text = text;
            ask.tool_results = tool_results(blocks);
        }
    }
    if messages.is_empty() {
        return Err(must_start_with_user());
    }
    tool_turns.finish(messages.len())?;
    check_attachments(&attachments)?;
    if let Some(inference) = body.get("inferenceConfig") {
        ask.max_tokens = check_max_tokens(inference.get("maxTokens"), limits)?;
        check_unit_range(inference.get("temperature"), "inferenceConfig.temperature")?;
        check_unit_range(inference.get("topP"), "inferenceConfig.topP")?;
    }
    check_call_settings(body)?;
    if let Some(tools) = body.get("toolConfig") {
        if let Some((name, schema)) = forced_tool(tools)? {
            ask.forced_tool = Some(name);
            ask.forced_tool_schema = schema;
        }
        ask.offered_tools = offered_tools(tools);
    }
    if ask.input_tokens() > limits.context_window_tokens {
        return Err("Input is too long for requested model.".into());
    }
    Ok(ask)
}

/// The content blocks of every message of a Converse or Anthropic body, in order (an
/// Anthropic content that is a plain string has none).
pub(crate) fn message_blocks(body: &Value) -> impl Iterator<Item = &Value> {
    body.get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
}

/// Reads the documents' `citations` settings into `ask`, as Bedrock checks them: the
/// model must cite (see [`supports_citations`](crate::bedrock::supports_citations)).
/// With citations on, the answer quotes the newest cited text document.
///
/// # Errors
/// The `ValidationException` message.
pub(crate) fn read_citations(body: &Value, model_id: &str, ask: &mut Ask) -> Result<(), String> {
    let documents = message_blocks(body).filter_map(|block| block.get("document"));
    for (index, document) in documents.enumerate() {
        if document.pointer("/citations/enabled") != Some(&Value::Bool(true)) {
            continue;
        }
        if !crate::bedrock::supports_citations(model_id) {
            return Err(format!(
                "The model {model_id} does not support citations. Turn citations off for \
                 the documents and try again."
            ));
        }
        let format = document.get("format").and_then(Value::as_str);
        if !format
            .and_then(DocumentFormat::parse)
            .is_some_and(|f| f.is_text())
        {
            continue;
        }
        let text = document
            .pointer("/source/bytes")
            .and_then(Value::as_str)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if let Some((start, end, quote)) = text.as_deref().and_then(first_passage) {
            ask.citation = Some(Cited {
                document_index: u32::try_from(index).unwrap_or(u32::MAX),
                title: document
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                quote,
                start,
                end,
            });
        }
    }
    Ok(())
}

/// A reasoning block sent back must be as the model gave it: a reasoning text with its
/// signature (Bedrock refuses unsigned reasoning), or redacted content.
fn check_reasoning_block(block: &Value, i: usize, j: usize) -> Result<(), String> {
    let Some(reasoning) = block.get("reasoningContent") else {
        return Ok(());
    };
    if let Some(text) = reasoning.get("reasoningText") {
        let signed = text
            .get("signature")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !signed {
            return Err(format!(
                "messages.{i}.content.{j}.reasoningContent.reasoningText.signature: Field \
                 required. Send reasoning back with the signature the model returned."
            ));
        }
    } else if reasoning.get("redactedContent").is_none() {
        return Err(format!(
            "The reasoningContent at messages.{i}.content.{j} holds neither reasoningText nor \
             redactedContent."
        ));
    }
    Ok(())
}

/// Reads a native structured output request (`outputConfig.textFormat`) into `ask` and
/// checks it as Bedrock does: a model that takes it, the `json_schema` type, a schema
/// that is JSON text.
pub(crate) fn read_output_config(
    body: &Value,
    model_id: &str,
    ask: &mut Ask,
) -> Result<(), String> {
    let Some(format) = body.pointer("/outputConfig/textFormat") else {
        return Ok(());
    };
    if !crate::bedrock::supports_native_structured_output(model_id) {
        return Err(format!(
            "The model {model_id} does not support structured outputs (outputConfig). Use \
             tool use to get structured output from this model."
        ));
    }
    if format.get("type").and_then(Value::as_str) != Some("json_schema") {
        return Err("outputConfig.textFormat.type must be json_schema.".into());
    }
    let definition = format
        .pointer("/structure/jsonSchema")
        .ok_or("outputConfig.textFormat.structure.jsonSchema is required.")?;
    let schema = definition
        .get("schema")
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .filter(Value::is_object)
        .ok_or("outputConfig.textFormat.structure.jsonSchema.schema is not a valid JSON schema.")?;
    let name = definition
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("output")
        .to_owned();
    ask.output_schema = Some((name, schema));
    Ok(())
}

/// Reads `additionalModelRequestFields.thinking` into `ask` and checks it as Bedrock does:
/// a model that thinks, a budget of at least 1,024 tokens and under `maxTokens`, no
/// temperature or top-p, no forced tool.
///
/// # Errors
/// The `ValidationException` message.
pub(crate) fn read_thinking(body: &Value, model_id: &str, ask: &mut Ask) -> Result<(), String> {
    let thinks = crate::bedrock::config::reasons(model_id);
    let reasoning_sent = message_blocks(body).any(|block| block.get("reasoningContent").is_some());
    if reasoning_sent && !thinks {
        return Err(format!(
            "The model {model_id} does not support reasoning content. Remove the \
             reasoningContent blocks from the messages and try again."
        ));
    }
    let Some(thinking) = body.pointer("/additionalModelRequestFields/thinking") else {
        return Ok(());
    };
    if thinking.get("type").and_then(Value::as_str) != Some("enabled") {
        return Ok(());
    }
    if !thinks {
        return Err(format!(
            "The model {model_id} does not support extended thinking: \
             additionalModelRequestFields.thinking is not permitted."
        ));
    }
    let budget = thinking
        .get("budget_tokens")
        .and_then(Value::as_u64)
        .ok_or("thinking.enabled.budget_tokens: Field required")?;
    if budget < 1024 {
        return Err(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024".into(),
        );
    }
    if let Some(max_tokens) = ask.max_tokens.filter(|&max| max <= budget) {
        return Err(format!(
            "`max_tokens` ({max_tokens}) must be greater than `thinking.budget_tokens` \
             ({budget}). Please consult our documentation at \
             https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
        ));
    }
    let inference = body.get("inferenceConfig");
    if inference.and_then(|i| i.get("temperature")).is_some() {
        return Err(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our \
             documentation at https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking"
                .into(),
        );
    }
    if inference.and_then(|i| i.get("topP")).is_some() {
        return Err(
            "`top_p` must be unset when thinking is enabled. Please consult our documentation \
             at https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking"
                .into(),
        );
    }
    if ask.forced_tool.is_some() {
        return Err("Thinking may not be enabled when tool_choice forces tool use.".into());
    }
    ask.reasoning_budget = Some(budget);
    Ok(())
}

/// The prompt so far, hashed block by block: the keys of cache points and of the block
/// boundaries before them.
#[derive(Default)]
struct Prefix {
    hasher: Sha256,
    /// The key and the tokens of the prompt up to each block so far.
    boundaries: Vec<(String, u64)>,
}

impl Prefix {
    /// How many block boundaries before a cache point are checked for a hit (Anthropic's
    /// documented lookback is about 20 blocks).
    const LOOKBACK: usize = 20;

    fn add(&mut self, block: &Value, ask: &Ask) {
        self.hasher.update(block.to_string().as_bytes());
        self.hasher.update(b"\n");
        let key = hex(&self.hasher.clone().finalize());
        self.boundaries.push((key, ask.input_tokens()));
    }

    fn cache_point(&self, ask: &Ask) -> CachePoint {
        CachePoint {
            key: hex(&self.hasher.clone().finalize()),
            tokens: ask.input_tokens(),
            lookback: self
                .boundaries
                .iter()
                .rev()
                .take(Self::LOOKBACK)
                .cloned()
                .collect(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An `image` or `document` block as a part, its bytes decoded; `None` for other blocks.
fn attachment(block: &Value, i: usize, j: usize) -> Result<Option<Part>, String> {
    let (kind, inner) = match (block.get("image"), block.get("document")) {
        (Some(image), _) => ("image", image),
        (None, Some(document)) => ("document", document),
        (None, None) => return Ok(None),
    };
    let at = format!("messages.{i}.member.content.{j}.member.{kind}");
    let format = inner.get("format").and_then(Value::as_str).unwrap_or("");
    let bytes = inner
        .pointer("/source/bytes")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("1 validation error detected: Value null at '{at}.source' failed to satisfy constraint: Member must not be null"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(bytes)
        .map_err(|_| format!("Invalid base64 in the bytes of {at}.source"))?;
    let enum_error = |set: &str| {
        format!(
            "1 validation error detected: Value '{format}' at '{at}.format' failed to satisfy \
             constraint: Member must satisfy enum value set: [{set}]"
        )
    };
    Ok(Some(if kind == "image" {
        let format =
            ImageFormat::parse(format).ok_or_else(|| enum_error("png, jpeg, gif, webp"))?;
        Part::image(format, bytes)
    } else {
        let format = DocumentFormat::parse(format)
            .ok_or_else(|| enum_error("pdf, csv, doc, docx, xls, xlsx, html, txt, md"))?;
        let name = inner.get("name").and_then(Value::as_str).unwrap_or("");
        Part::document(format, name, bytes)
    }))
}

/// Bedrock's limits on a request's images and documents (the ones this library checks
/// before a call, so the same rules).
fn check_attachments(attachments: &[(usize, usize, Part)]) -> Result<(), String> {
    let parts: Vec<Part> = attachments.iter().map(|(_, _, p)| p.clone()).collect();
    AttachmentLimits::default().check(&parts).map_err(|error| {
        let index = error
            .field
            .trim_start_matches("attachments[")
            .split(']')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        let (i, j, part) = &attachments[index.min(attachments.len().saturating_sub(1))];
        format!(
            "The {} at messages.{i}.content.{j} is not valid: {}",
            part.kind(),
            error.reason
        )
    })
}

fn must_start_with_user() -> String {
    "A conversation must start with a user message. Try again with a conversation that starts \
     with a user message."
        .into()
}

/// `maxTokens`: at least 1, at most the model's limit.
pub(crate) fn check_max_tokens(
    value: Option<&Value>,
    limits: Limits,
) -> Result<Option<u64>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.as_i64() {
        Some(n) if n < 1 => Err(format!(
            "1 validation error detected: Value '{n}' at 'inferenceConfig.maxTokens' failed to \
             satisfy constraint: Member must have value greater than or equal to 1"
        )),
        Some(n) if n.unsigned_abs() > limits.max_output_tokens => Err(format!(
            "The maximum tokens you requested exceeds the model limit of {max}. Try again with \
             a maximum tokens value that is lower than {max}.",
            max = limits.max_output_tokens
        )),
        Some(n) => Ok(Some(n.unsigned_abs())),
        None => Err(format!(
            "Value '{value}' at 'inferenceConfig.maxTokens' is not an integer"
        )),
    }
}

/// Temperature and top-p: from 0 to 1.
pub(crate) fn check_unit_range(value: Option<&Value>, field: &str) -> Result<(), String> {
    match value.map(|v| v.as_f64()) {
        None => Ok(()),
        Some(Some(x)) if x < 0.0 => Err(format!(
            "1 validation error detected: Value '{x}' at '{field}' failed to satisfy \
             constraint: Member must have value greater than or equal to 0"
        )),
        Some(Some(x)) if x > 1.0 => Err(format!(
            "1 validation error detected: Value '{x}' at '{field}' failed to satisfy \
             constraint: Member must have value less than or equal to 1"
        )),
        Some(Some(_)) => Ok(()),
        Some(None) => Err(format!("Value at '{field}' is not a number")),
    }
}

/// The tool `toolChoice` forces, which must be one of `tools`, and its input schema
/// (`toolSpec.inputSchema.json`).
fn forced_tool(tool_config: &Value) -> Result<Option<(String, Option<Value>)>, String> {
    let specs: Vec<&Value> = tool_config
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| tools.iter().filter_map(|t| t.get("toolSpec")).collect())
        .unwrap_or_default();
    let named = |name: &str| {
        specs
            .iter()
            .find(|spec| spec.get("name").and_then(Value::as_str) == Some(name))
    };
    if specs.is_empty() {
        return Err("The toolConfig field must be defined with at least one tool.".into());
    }
    match tool_config
        .pointer("/toolChoice/tool/name")
        .and_then(Value::as_str)
    {
        Some(name) => match named(name) {
            Some(spec) => Ok(Some((
                name.to_owned(),
                spec.pointer("/inputSchema/json").cloned(),
            ))),
            None => Err(format!(
                "The tool {name} specified in toolChoice is not defined in toolConfig.tools."
            )),
        },
        None => Ok(None),
    }
}

/// The service tier, performance configuration and request metadata, as Bedrock checks
/// them: known tiers and latencies, metadata of at most 16 pairs whose keys (1 to 256
/// characters) and values (up to 256) are letters, digits, white space and `:_@$#=/+,-.`.
fn check_call_settings(body: &Value) -> Result<(), String> {
    let enum_value = |pointer: &str, allowed: &[&str]| match body.pointer(pointer) {
        None => Ok(()),
        Some(Value::String(v)) if allowed.contains(&v.as_str()) => Ok(()),
        Some(v) => Err(format!(
            "1 validation error detected: Value {v} at '{}' failed to satisfy constraint: \
             Member must satisfy enum value set: [{}]",
            pointer.trim_start_matches('/').replace('/', "."),
            allowed.join(", ")
        )),
    };
    enum_value(
        "/serviceTier/type",
        &["default", "flex", "priority", "reserved"],
    )?;
    enum_value("/performanceConfig/latency", &["standard", "optimized"])?;
    let Some(metadata) = body.get("requestMetadata") else {
        return Ok(());
    };
    let pairs = metadata
        .as_object()
        .ok_or("requestMetadata must be a map of strings")?;
    if pairs.len() > 16 {
        return Err("requestMetadata may hold at most 16 entries".into());
    }
    let fits = |text: &str, min: usize| {
        let n = text.chars().count();
        (min..=256).contains(&n)
            && text.chars().all(|c| {
                c.is_ascii_alphanumeric() || c.is_whitespace() || ":_@$#=/+,-.".contains(c)
            })
    };
    for (key, value) in pairs {
        let value = value.as_str().unwrap_or("\u{0}");
        if !fits(key, 1) || !fits(value, 0) {
            return Err(format!(
                "1 validation error detected: Value at 'requestMetadata' failed to satisfy \
                 constraint: Map keys and values must match [a-zA-Z0-9\\s:_@$#=/+,-.]{{0,256}} \
                 (the entry `{key}`)"
            ));
        }
    }
    Ok(())
}

/// The offered tools' names and input schemas.
fn offered_tools(tool_config: &Value) -> Vec<(String, Value)> {
    let Some(tools) = tool_config.get("tools").and_then(Value::as_array) else {
        return Vec::new();
    };
    tools
        .iter()
        .filter_map(|tool| {
            let spec = tool.get("toolSpec")?;
            let name = spec.get("name")?.as_str()?.to_owned();
            let schema = spec
                .pointer("/inputSchema/json")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            Some((name, schema))
        })
        .collect()
}

/// The tool results of a user turn, each as its text (`failed: ...` for an error).
fn tool_results(blocks: &[Value]) -> Vec<String> {
    blocks
        .iter()
        .filter_map(|block| block.get("toolResult"))
        .map(|result| {
            let text: String = result
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| match (c.get("text"), c.get("json")) {
                    (Some(Value::String(t)), _) => t.clone(),
                    (_, Some(json)) => json.to_string(),
                    _ => c.to_string(),
                })
                .collect();
            match result.get("status").and_then(Value::as_str) {
                Some("error") => format!("failed: {text}"),
                _ => text,
            }
        })
        .collect()
}

/// Bedrock's rules for tool blocks: allowed only with a `toolConfig`, and every `toolUse`
/// of an assistant turn answered by a `toolResult` with its id in the next (user) turn,
/// and no result without its call.
struct ToolTurns {
    config: bool,
    /// The calls of the last assistant turn, not yet answered, and that turn's index.
    open: Vec<String>,
    opened_at: usize,
}

impl ToolTurns {
    fn new(config: bool) -> Self {
        Self {
            config,
            open: Vec::new(),
            opened_at: 0,
        }
    }

    fn check(&mut self, role: &str, blocks: &[Value], i: usize) -> Result<(), String> {
        let id = |block: &Value, kind: &str, key: &str| {
            block
                .get(kind)
                .and_then(|b| b.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let calls: Vec<String> = blocks
            .iter()
            .filter_map(|b| id(b, "toolUse", "toolUseId"))
            .collect();
        let results: Vec<String> = blocks
            .iter()
            .filter_map(|b| id(b, "toolResult", "toolUseId"))
            .collect();
        if (!calls.is_empty() || !results.is_empty()) && !self.config {
            return Err(
                "The toolConfig field must be defined when using toolUse and toolResult \
                        content blocks."
                    .into(),
            );
        }
        if role == "assistant" {
            if !results.is_empty() {
                return Err(format!(
                    "messages.{i}: toolResult blocks are only allowed in a user turn."
                ));
            }
            self.open = calls;
            self.opened_at = i;
            return Ok(());
        }
        if let Some(stray) = results.iter().find(|r| !self.open.contains(r)) {
            return Err(format!(
                "messages.{i}.content: the toolResult block with toolUseId {stray} answers no \
                 toolUse block of the previous turn."
            ));
        }
        let missing: Vec<&String> = self.open.iter().filter(|c| !results.contains(c)).collect();
        if !missing.is_empty() {
            return Err(format!(
                "Expected toolResult blocks at messages.{i}.content for the following Ids: {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        self.open.clear();
        Ok(())
    }

    /// A conversation may not end with calls still open (it must end with a user turn,
    /// which `check` has seen answer them).
    fn finish(&self, len: usize) -> Result<(), String> {
        match self.open.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "Expected toolResult blocks at messages.{len}.content for the following Ids: {}",
                self.open.join(", ")
            )),
        }
    }
}

fn tool_use_id() -> String {
    format!("tooluse_{}", uuid::Uuid::new_v4().simple())
}

fn usage_json(plan: &Plan) -> Value {
    let mut usage = json!({
        "inputTokens": plan.usage.input_tokens,
        "outputTokens": plan.usage.output_tokens,
        "totalTokens": plan.usage.total_tokens,
    });
    if plan.usage.cache_read_tokens > 0 || plan.usage.cache_write_tokens > 0 {
        usage["cacheReadInputTokens"] = plan.usage.cache_read_tokens.into();
        usage["cacheWriteInputTokens"] = plan.usage.cache_write_tokens.into();
    }
    usage
}

fn latency_ms(plan: &Plan) -> u64 {
    u64::try_from(plan.duration().as_millis()).unwrap_or(u64::MAX)
}

/// The Converse answer's JSON: the reasoning block, if any, then the answer's block.
pub(crate) fn answer(plan: &Plan) -> Value {
    let blocks = match (&plan.content, &plan.citation) {
        (Content::Text { deltas }, Some((at, cited))) => vec![
            json!({ "text": deltas[..*at].concat() }),
            json!({ "citationsContent": {
                "content": [{ "text": deltas[*at..].concat() }],
                "citations": [citation_json(cited)],
            }}),
        ],
        (Content::Text { .. }, None) => vec![json!({ "text": plan.text() })],
        (Content::ToolUse { name, input, .. }, _) => vec![json!({
            "toolUse": { "toolUseId": tool_use_id(), "name": name, "input": input }
        })],
    };
    let redacted = plan
        .redacted_reasoning
        .as_ref()
        .map(|data| json!({ "reasoningContent": { "redactedContent": redacted_base64(data) } }));
    let content: Vec<Value> = redacted
        .into_iter()
        .chain(plan.reasoning.iter().map(|r| {
            json!({ "reasoningContent": {
                "reasoningText": { "text": r.text(), "signature": r.signature }
            }})
        }))
        .chain(blocks)
        .collect();
    json!({
        "output": { "message": { "role": "assistant", "content": content } },
        "stopReason": plan.stop_reason,
        "usage": usage_json(plan),
        "metrics": { "latencyMs": latency_ms(plan) },
    })
}

/// A citation as Converse gives it (the stream's `citation` delta has the same shape).
fn citation_json(cited: &Cited) -> Value {
    json!({
        "title": cited.title,
        "sourceContent": [{ "text": cited.quote }],
        "location": { "documentChar": {
            "documentIndex": cited.document_index,
            "start": cited.start,
            "end": cited.end,
        }},
    })
}

/// Encrypted reasoning as the JSON protocol carries a blob: base64.
fn redacted_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Frames sent as one piece of a stream (event-stream frames delimit themselves).
fn joined(frames: impl IntoIterator<Item = Option<Bytes>>) -> Bytes {
    let mut out = BytesMut::new();
    for frame in frames.into_iter().flatten() {
        out.extend_from_slice(&frame);
    }
    out.freeze()
}

/// The ConverseStream events: `messageStart`; with reasoning, its `contentBlockDelta`s
/// (`reasoningContent.text`) at block 0, one with its `reasoningContent.signature`, and
/// its `contentBlockStop`; (`contentBlockStart` for a tool call); the answer's
/// `contentBlockDelta`s, `contentBlockStop`, `messageStop`, `metadata`.
pub(crate) fn stream_frames(plan: &Plan) -> Frames {
    let start = vec![event_frame("messageStart", &json!({ "role": "assistant" }))];
    let delta_frame = |index: usize, delta: Value| {
        event_frame(
            "contentBlockDelta",
            &json!({ "contentBlockIndex": index, "delta": delta }),
        )
    };
    let mut deltas = Vec::new();
    let mut index = 0;
    if let Some(data) = &plan.redacted_reasoning {
        let redacted = json!({ "reasoningContent": { "redactedContent": redacted_base64(data) } });
        deltas.push(joined([
            delta_frame(index, redacted),
            event_frame("contentBlockStop", &json!({ "contentBlockIndex": index })),
        ]));
        index += 1;
    }
    if let Some(reasoning) = &plan.reasoning {
        let last = reasoning.deltas.len().saturating_sub(1);
        for (k, piece) in reasoning.deltas.iter().enumerate() {
            let text = delta_frame(index, json!({ "reasoningContent": { "text": piece } }));
            deltas.push(if k == last {
                // The signature and the end of the block come with the last piece.
                let signature = json!({ "reasoningContent": { "signature": reasoning.signature } });
                joined([
                    text,
                    delta_frame(index, signature),
                    event_frame("contentBlockStop", &json!({ "contentBlockIndex": index })),
                ])
            } else {
                joined([text])
            });
        }
        index += 1;
    }
    for (k, piece) in plan.deltas().iter().enumerate() {
        // The cited words are a block of their own, their citation first.
        let cited = match &plan.citation {
            Some((at, cited)) if *at == k => {
                let stop = event_frame("contentBlockStop", &json!({ "contentBlockIndex": index }));
                index += 1;
                let citation = delta_frame(index, json!({ "citation": citation_json(cited) }));
                Some(joined([stop, citation]))
            }
            _ => None,
        };
        let frame = match &plan.content {
            Content::Text { .. } => delta_frame(index, json!({ "text": piece })),
            Content::ToolUse { .. } => delta_frame(index, json!({ "toolUse": { "input": piece } })),
        };
        let block_start = match &plan.content {
            Content::ToolUse { name, .. } if k == 0 => event_frame(
                "contentBlockStart",
                &json!({
                    "contentBlockIndex": index,
                    "start": { "toolUse": { "toolUseId": tool_use_id(), "name": name } }
                }),
            ),
            _ => None,
        };
        deltas.push(joined([cited, block_start, frame]));
    }
    let end = vec![
        event_frame("contentBlockStop", &json!({ "contentBlockIndex": index })),
        event_frame("messageStop", &json!({ "stopReason": plan.stop_reason })),
        event_frame(
            "metadata",
            &json!({
                "usage": usage_json(plan),
                "metrics": { "latencyMs": latency_ms(plan) }
            }),
        ),
    ];
    Frames {
        start: start.into_iter().flatten().collect(),
        deltas,
        end: end.into_iter().flatten().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_output_tokens: 4096,
        context_window_tokens: 100,
    };

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": [{"text": text}]})
    }

    fn assistant(text: &str) -> Value {
        json!({"role": "assistant", "content": [{"text": text}]})
    }

    #[test]
    fn a_valid_conversation_is_read() {
        let ask = read_request(
            &json!({
                "messages": [user("hi"), assistant("hello"), user("again")],
                "system": [{"text": "be brief"}],
                "inferenceConfig": {"maxTokens": 10, "temperature": 0.5}
            }),
            LIMITS,
        )
        .unwrap();
        assert_eq!(ask.last_user_text, "again");
        assert_eq!(ask.input_chars, 2 + 5 + 5 + 8);
        assert_eq!(ask.max_tokens, Some(10));
    }

    #[test]
    fn bedrock_rules_are_enforced() {
        let cases = [
            (
                json!({"messages": [assistant("x")]}),
                "must start with a user",
            ),
            (
                json!({"messages": [user("a"), user("b")]}),
                "must alternate",
            ),
            (
                json!({"messages": [{"role": "user", "content": []}]}),
                "is empty",
            ),
            (json!({"messages": [user("  ")]}), "is blank"),
            (
                json!({"messages": [user("a")], "inferenceConfig": {"maxTokens": 0}}),
                "greater than or equal to 1",
            ),
            (
                json!({"messages": [user("a")], "inferenceConfig": {"maxTokens": 5000}}),
                "exceeds the model limit of 4096",
            ),
            (
                json!({"messages": [user("a")], "inferenceConfig": {"topP": 1.5}}),
                "less than or equal to 1",
            ),
            (
                json!({"messages": [user(&"x".repeat(401))]}),
                "Input is too long",
            ),
            (
                json!({"messages": [user("a")], "toolConfig": {"tools": [{"toolSpec": {"name": "a"}}], "toolChoice": {"tool": {"name": "b"}}}}),
                "not defined",
            ),
        ];
        for (body, expected) in cases {
            let error = read_request(&body, LIMITS).unwrap_err();
            assert!(error.contains(expected), "{body}: {error}");
        }
    }
}
