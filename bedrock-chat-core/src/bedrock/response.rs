//! Bedrock's answers in this crate's terms: a Converse output as a [`ModelResponse`] (with
//! structured output checked), token usage, stop reasons.

use std::time::Duration;

use aws_sdk_bedrockruntime::operation::converse::ConverseOutput as ConverseResult;
use aws_sdk_bedrockruntime::types::{
    CitationLocation as SdkLocation, ContentBlock, ConverseOutput, ReasoningContentBlock,
    TokenUsage,
};

use super::document::to_json;
use crate::citation::{Citation, CitationLocation};
use crate::error::ModelError;
use crate::model::{ModelResponse, OutputSchema, StopReason};
use crate::parts::{Binary, Part};
use crate::tool::ToolCall;
use crate::types::Usage;

/// Bedrock's token counts (never negative in practice; clamped at 0 if they were),
/// prompt-cache reads and writes included.
pub(crate) fn usage(tokens: &TokenUsage) -> Usage {
    let count = |n: i32| u64::try_from(n).unwrap_or(0);
    Usage {
        input_tokens: count(tokens.input_tokens),
        output_tokens: count(tokens.output_tokens),
        total_tokens: count(tokens.total_tokens),
        cache_read_tokens: tokens.cache_read_input_tokens.map_or(0, count),
        cache_write_tokens: tokens.cache_write_input_tokens.map_or(0, count),
    }
}

/// Bedrock's stop reason, by its wire name.
pub(crate) fn stop_reason(reason: &aws_sdk_bedrockruntime::types::StopReason) -> StopReason {
    StopReason::parse(reason.as_str())
}

/// A Converse result as a response, its reasoning blocks in [`ModelResponse::reasoning`].
/// With an output schema, the reply must be a call of the
/// schema's tool: its input is the structured value, and its JSON text the response text.
///
/// # Errors
/// [`ModelError::SchemaViolation`] when a schema was asked for and the model did not call
/// its tool; [`ModelError::ModelFailure`] when the result holds no message.
/// How a structured output was asked for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Output<'a> {
    /// As a call of a forced tool whose input is the schema.
    Tool(&'a OutputSchema),
    /// As JSON text that fits the schema (`outputConfig`).
    Native(&'a OutputSchema),
}

pub(crate) fn into_response(
    result: ConverseResult,
    output: Option<Output<'_>>,
    measured: Duration,
) -> Result<ModelResponse, ModelError> {
    let stop_reason = stop_reason(&result.stop_reason);
    let usage = result.usage.as_ref().map(usage).unwrap_or_default();
    let latency = result
        .metrics
        .as_ref()
        .and_then(|m| u64::try_from(m.latency_ms).ok())
        .map(Duration::from_millis)
        .unwrap_or(measured);
    let message = match result.output {
        Some(ConverseOutput::Message(message)) => message,
        _ => {
            return Err(ModelError::model_failure(format!(
                "the reply holds no message (stop reason {})",
                stop_reason.as_str()
            )))
        }
    };
    // The answer's text is its text blocks and the words of its cited blocks; reasoning
    // and other blocks are not part of it.
    let text_of = |content: &[ContentBlock]| cited_text(content).0;
    let schema = match output {
        Some(Output::Tool(schema)) => Some(schema),
        _ => None,
    };
    let (text, structured) = match output {
        None => (text_of(&message.content), None),
        Some(Output::Native(schema)) => {
            let text = text_of(&message.content);
            let value = native_value(&text, schema, &stop_reason)?;
            (text, Some(value))
        }
        Some(Output::Tool(schema)) => {
            let input = message
                .content
                .iter()
                .find_map(|block| match block {
                    ContentBlock::ToolUse(tool) if tool.name == schema.name => Some(&tool.input),
                    _ => None,
                })
                .ok_or_else(|| {
                    ModelError::schema_violation(format!(
                        "the model did not call the `{}` tool (stop reason {})",
                        schema.name,
                        stop_reason.as_str()
                    ))
                })?;
            let value = to_json(input);
            if !value.is_object() {
                return Err(ModelError::schema_violation(format!(
                    "the `{}` tool input is not a JSON object",
                    schema.name
                )));
            }
            (value.to_string(), Some(value))
        }
    };
    // The calls of offered tools; a structured output's forced call is the answer instead.
    let tool_calls = message
        .content
        .iter()
        .filter_map(|block| match block {
            ContentBlock::ToolUse(tool)
                if schema.is_none_or(|s: &OutputSchema| s.name != tool.name) =>
            {
                Some(ToolCall {
                    id: tool.tool_use_id.clone(),
                    name: tool.name.clone(),
                    input: to_json(&tool.input),
                })
            }
            _ => None,
        })
        .collect();
    let citations = match output {
        None => cited_text(&message.content).1,
        Some(_) => Vec::new(),
    };
    let reasoning = message
        .content
        .into_iter()
        .filter_map(|block| match block {
            ContentBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(reasoning)) => {
                Some(Part::Reasoning {
                    text: reasoning.text,
                    signature: reasoning.signature,
                })
            }
            ContentBlock::ReasoningContent(ReasoningContentBlock::RedactedContent(data)) => {
                Some(Part::RedactedReasoning {
                    data: Binary::Bytes(data.into_inner().into()),
                })
            }
            _ => None,
        })
        .collect();
    Ok(ModelResponse {
        text,
        reasoning,
        structured,
        tool_calls,
        citations,
        usage,
        stop_reason,
        latency,
    })
}

/// The text of `content`'s text and cited blocks in order, and the citations of the cited
/// words (their spans in that text).
fn cited_text(content: &[ContentBlock]) -> (String, Vec<Citation>) {
    let mut text = String::new();
    let mut chars = 0;
    let mut citations = Vec::new();
    for block in content {
        match block {
            ContentBlock::Text(t) => {
                text.push_str(t);
                chars += t.chars().count();
            }
            ContentBlock::CitationsContent(cited) => {
                let start = chars;
                for t in cited.content().iter().filter_map(|c| c.as_text().ok()) {
                    text.push_str(t);
                    chars += t.chars().count();
                }
                citations.extend(cited.citations().iter().map(|c| {
                    citation(
                        start,
                        chars,
                        c.title(),
                        c.source_content().iter().filter_map(|s| s.as_text().ok()),
                        c.location(),
                    )
                }));
            }
            _ => {}
        }
    }
    (text, citations)
}

/// A Bedrock citation of characters `start..end` of the answer.
pub(crate) fn citation<'a>(
    start: usize,
    end: usize,
    title: Option<&str>,
    quote: impl Iterator<Item = &'a String>,
    location: Option<&SdkLocation>,
) -> Citation {
    let mut citation = Citation::new(start, end, quote.map(String::as_str).collect::<String>());
    citation.title = title.map(str::to_owned);
    citation.location = location.and_then(self::location);
    citation
}

/// A Bedrock citation location in this crate's terms; `None` for web and search-result
/// locations, which documents do not have.
fn location(location: &SdkLocation) -> Option<CitationLocation> {
    let n = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    Some(match location {
        SdkLocation::DocumentChar(at) => CitationLocation::Characters {
            document_index: n(at.document_index),
            start: n(at.start),
            end: n(at.end),
        },
        SdkLocation::DocumentPage(at) => CitationLocation::Pages {
            document_index: n(at.document_index),
            start: n(at.start),
            end: n(at.end),
        },
        SdkLocation::DocumentChunk(at) => CitationLocation::Chunks {
            document_index: n(at.document_index),
            start: n(at.start),
            end: n(at.end),
        },
        _ => return None,
    })
}

/// The JSON object a native structured output's text holds.
///
/// # Errors
/// [`ModelError::SchemaViolation`] when the text is not a JSON object.
fn native_value(
    text: &str,
    schema: &OutputSchema,
    stop_reason: &StopReason,
) -> Result<serde_json::Value, ModelError> {
    match serde_json::from_str::<serde_json::Value>(text.trim()) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(ModelError::schema_violation(format!(
            "the `{}` output is not a JSON object",
            schema.name
        ))),
        Err(error) => Err(ModelError::schema_violation(format!(
            "the `{}` output is not JSON (stop reason {}): {error}",
            schema.name,
            stop_reason.as_str()
        ))
        .with_source(error)),
    }
}
