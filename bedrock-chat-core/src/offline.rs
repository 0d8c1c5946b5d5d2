//! [`OfflineChatModel`]: a deterministic model that runs in process, for demos, examples
//! and tests when no AWS account is configured.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;

use crate::citation::{cited_document, Citation, CitationLocation};
use crate::context::{CharRatioEstimator, TokenEstimator};
use crate::error::ModelError;
use crate::model::{ChatModel, ModelEvent, ModelRequest, ModelResponse, ModelStream, StopReason};
use crate::parts::Part;
use crate::schema_fill::{fill, fill_tool_input};
use crate::tool::ToolCall;
use crate::types::{Role, Usage};

/// The model id the offline model reports.
pub const OFFLINE_MODEL_ID: &str = "offline";

/// The signature of the offline model's reasoning.
pub const OFFLINE_REASONING_SIGNATURE: &str = "offline-reasoning";

/// A model that needs no network: it answers every message with a fixed, deterministic
/// reply that says it is the offline model, quotes the question and counts the turns it
/// was given, streamed a few words at a time. Usage is estimated from the text.
///
/// With a [reasoning budget](crate::InferenceConfig::reasoning_budget) it reasons first,
/// briefly and deterministically ("Reasoning (offline model): ..."), streamed as
/// [`ModelEvent::ReasoningDelta`]s and signed with [`OFFLINE_REASONING_SIGNATURE`], so that
/// demos show reasoning; its tokens count as output tokens.
///
/// Offered [tools](crate::tool), it calls the first one whose name the question mentions
/// (`current_time` when asked "what is the current time?"), with input made to fit the
/// tool's schema, and then answers quoting what the tool returned.
///
/// With an [`OutputSchema`](crate::OutputSchema) it returns JSON generated to validate
/// against the schema: required properties, types, enums, nested objects and arrays, local
/// `$ref`s, `default`s; strings read as text made from the property's name and the last
/// user message (a persona's `name` is a name, its `system_prompt` a prompt).
///
/// ```
/// use bedrock_chat_core::{ChatModel, ModelMessage, ModelRequest, OfflineChatModel};
/// # tokio_test_block_on(async {
/// let model = OfflineChatModel::new();
/// let reply = model
///     .converse(ModelRequest::new([ModelMessage::user("Hello")]))
///     .await?;
/// assert!(reply.text.contains("offline model"));
/// # Ok::<(), bedrock_chat_core::ModelError>(()) });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct OfflineChatModel {
    model_id: String,
    delta_delay: Duration,
    words_per_delta: usize,
    estimator: CharRatioEstimator,
}

impl Default for OfflineChatModel {
    fn default() -> Self {
        Self::new()
    }
}

impl OfflineChatModel {
    /// An offline model that streams without delay.
    pub fn new() -> Self {
        Self {
            model_id: OFFLINE_MODEL_ID.to_owned(),
            delta_delay: Duration::ZERO,
            words_per_delta: 3,
            estimator: CharRatioEstimator::default(),
        }
    }

    /// Waits this long before each streamed piece (to look like a real model in demos).
    pub fn with_delta_delay(mut self, delay: Duration) -> Self {
        self.delta_delay = delay;
        self
    }

    /// Streams this many words per piece (at least one).
    pub fn with_words_per_delta(mut self, words: usize) -> Self {
        self.words_per_delta = words.max(1);
        self
    }

    /// Reports this model id instead of `offline`.
    pub fn with_model_id(mut self, id: impl Into<String>) -> Self {
        self.model_id = id.into();
        self
    }

    fn validate(request: &ModelRequest) -> Result<&str, ModelError> {
        let last = request
            .messages
            .last()
            .filter(|m| m.role == Role::User)
            .ok_or_else(|| {
                ModelError::invalid_request("the conversation must end with a user message")
            })?;
        if request.messages.first().map(|m| m.role) != Some(Role::User) {
            return Err(ModelError::invalid_request(
                "the conversation must start with a user message",
            ));
        }
        Ok(&last.content)
    }

    fn reply_text(request: &ModelRequest, question: &str) -> String {
        if let Some(results) = request.messages.last().and_then(Self::tool_results) {
            return format!(
                "This is the offline model, answering with what the tools returned: {results}."
            );
        }
        let quoted: String = question.chars().take(200).collect();
        let ellipsis = if quoted.len() < question.len() {
            "…"
        } else {
            ""
        };
        let earlier = request.messages.len() - 1;
        let persona = match &request.system {
            Some(s) if !s.trim().is_empty() => " I was given a system prompt.",
            _ => "",
        };
        format!(
            "This is the offline model (no AWS account configured), answering: \
             \"{quoted}{ellipsis}\". I can see {earlier} earlier message{s} in this \
             conversation.{persona} Configure AWS credentials and a Bedrock model id for \
             real answers.",
            s = if earlier == 1 { "" } else { "s" },
        )
    }

    /// The tool results a turn holds, each as its text (`failed: ...` for an error), joined
    /// by `; `; `None` when it holds none.
    fn tool_results(turn: &crate::model::ModelMessage) -> Option<String> {
        let results: Vec<String> = turn
            .parts
            .iter()
            .filter_map(|part| match part {
                Part::ToolResult {
                    output, is_error, ..
                } => {
                    let text = match output {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    Some(if *is_error {
                        format!("failed: {text}")
                    } else {
                        text
                    })
                }
                _ => None,
            })
            .collect();
        (!results.is_empty()).then(|| results.join("; "))
    }

    /// The reasoning before the reply, when the request asks for reasoning.
    fn reasoning_text(request: &ModelRequest, question: &str) -> Option<String> {
        request.inference.reasoning_budget?;
        if request
            .messages
            .last()
            .and_then(Self::tool_results)
            .is_some()
        {
            return Some(
                "Reasoning (offline model): the tools have answered; I will pass on what they \
                 returned."
                    .to_owned(),
            );
        }
        let quoted: String = question.chars().take(80).collect();
        let ellipsis = if quoted.len() < question.len() {
            "…"
        } else {
            ""
        };
        let earlier = request.messages.len() - 1;
        Some(format!(
            "Reasoning (offline model): the question is \"{quoted}{ellipsis}\", with {earlier} \
             earlier message{s} before it. I have no real model to think with, so I will \
             answer with my fixed reply.",
            s = if earlier == 1 { "" } else { "s" },
        ))
    }

    /// `usage` with the tokens of `reasoning` added to its output.
    fn with_reasoning(&self, usage: Usage, reasoning: &str) -> Usage {
        Usage::new(
            usage.input_tokens,
            usage.output_tokens + self.estimator.estimate(reasoning),
        )
    }

    fn usage(&self, request: &ModelRequest, reply: &str) -> Usage {
        let input: u64 = request
            .messages
            .iter()
            .map(|m| self.estimator.estimate(&m.content))
            .chain(request.system.iter().map(|s| self.estimator.estimate(s)))
            .sum();
        Usage::new(input, self.estimator.estimate(reply))
    }

    fn cut_at_max_tokens(&self, request: &ModelRequest, text: String) -> (String, StopReason) {
        match request.inference.max_tokens {
            Some(max) => {
                let max_chars = (f64::from(max) * self.estimator.chars_per_token) as usize;
                if text.chars().count() > max_chars {
                    (
                        text.chars().take(max_chars).collect(),
                        StopReason::MaxTokens,
                    )
                } else {
                    (text, StopReason::EndTurn)
                }
            }
            None => (text, StopReason::EndTurn),
        }
    }

    fn pieces(&self, text: &str) -> Vec<String> {
        let words: Vec<&str> = text.split_inclusive(' ').collect();
        words
            .chunks(self.words_per_delta)
            .map(|chunk| chunk.concat())
            .collect()
    }
}

#[async_trait]
impl ChatModel for OfflineChatModel {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    async fn converse(&self, request: ModelRequest) -> Result<ModelResponse, ModelError> {
        let started = Instant::now();
        let question = Self::validate(&request)?;
        if let Some(schema) = &request.output_schema {
            let value = fill(&schema.schema, &schema.name, question);
            let text = value.to_string();
            let usage = self.usage(&request, &text);
            return Ok(ModelResponse {
                reasoning: Vec::new(),
                text,
                structured: Some(value),
                tool_calls: Vec::new(),
                citations: Vec::new(),
                usage,
                stop_reason: StopReason::ToolUse,
                latency: started.elapsed(),
            });
        }
        let answer = self.answer(&request, question);
        Ok(ModelResponse {
            reasoning: answer
                .reasoning
                .into_iter()
                .map(|text| Part::Reasoning {
                    text,
                    signature: Some(OFFLINE_REASONING_SIGNATURE.to_owned()),
                })
                .collect(),
            text: answer.text,
            structured: None,
            tool_calls: answer.tool_calls,
            citations: answer.citations,
            usage: answer.usage,
            stop_reason: answer.stop_reason,
            latency: started.elapsed(),
        })
    }

    async fn converse_stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError> {
        let question = Self::validate(&request)?;
        let answer = self.answer(&request, question);
        let mut events = Vec::new();
        if let Some(reasoning) = &answer.reasoning {
            events.extend(
                self.pieces(reasoning)
                    .into_iter()
                    .map(ModelEvent::ReasoningDelta),
            );
            events.push(ModelEvent::ReasoningSignature(
                OFFLINE_REASONING_SIGNATURE.to_owned(),
            ));
        }
        let delay = self.delta_delay;
        events.extend(
            self.pieces(&answer.text)
                .into_iter()
                .map(ModelEvent::TextDelta),
        );
        events.extend(answer.citations.into_iter().map(ModelEvent::Citation));
        events.extend(answer.tool_calls.into_iter().map(ModelEvent::ToolCall));
        events.extend([
            ModelEvent::Stop(answer.stop_reason),
            ModelEvent::Usage(answer.usage),
        ]);
        let stream = futures::stream::iter(events).then(move |event| async move {
            let piece = matches!(
                event,
                ModelEvent::TextDelta(_) | ModelEvent::ReasoningDelta(_)
            );
            if piece && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(event)
        });
        Ok(stream.boxed())
    }
}

/// What the offline model answers, plain or streamed.
struct Answer {
    reasoning: Option<String>,
    text: String,
    tool_calls: Vec<ToolCall>,
    citations: Vec<Citation>,
    stop_reason: StopReason,
    usage: Usage,
}

impl OfflineChatModel {
    /// The answer to `request`: a call of an offered tool the question names, or the
    /// fixed reply (quoting the tools' results after a call), with reasoning when asked.
    fn answer(&self, request: &ModelRequest, question: &str) -> Answer {
        let reasoning = Self::reasoning_text(request, question);
        let (text, tool_calls, stop_reason) = match Self::tool_call(request, question) {
            Some(call) => (String::new(), vec![call], StopReason::ToolUse),
            None => {
                let (text, stop) =
                    self.cut_at_max_tokens(request, Self::reply_text(request, question));
                (text, Vec::new(), stop)
            }
        };
        let (text, citations) = match tool_calls.is_empty() && request.inference.wants_citations() {
            true => Self::cite(text, request),
            false => (text, Vec::new()),
        };
        let written: String = tool_calls.iter().map(|c| c.input.to_string()).collect();
        let mut usage = self.usage(request, &(text.clone() + &written));
        if let Some(reasoning) = &reasoning {
            usage = self.with_reasoning(usage, reasoning);
        }
        Answer {
            reasoning,
            text,
            tool_calls,
            citations,
            stop_reason,
            usage,
        }
    }

    /// `text` quoting the first passage of the newest text document of the request, with
    /// the citation of that quote; `text` alone when there is none.
    fn cite(mut text: String, request: &ModelRequest) -> (String, Vec<Citation>) {
        let Some((index, name, (start, end, quote))) = cited_document(&request.messages) else {
            return (text, Vec::new());
        };
        text.push_str(&format!("\n\nThe document “{name}” says: "));
        let at = text.chars().count();
        text.push_str(&quote);
        let citation = Citation::new(at, at + quote.chars().count(), quote)
            .with_title(name)
            .with_location(CitationLocation::Characters {
                document_index: index,
                start: u32::try_from(start).unwrap_or(u32::MAX),
                end: u32::try_from(end).unwrap_or(u32::MAX),
            });
        (text, vec![citation])
    }

    /// A call of the first offered tool whose name the question mentions (`current_time`
    /// as "current time" too), with input made to fit its schema; none once the last turn
    /// holds tool results.
    fn tool_call(request: &ModelRequest, question: &str) -> Option<ToolCall> {
        let last = request.messages.last()?;
        if last
            .parts
            .iter()
            .any(|part| matches!(part, Part::ToolResult { .. }))
        {
            return None;
        }
        let tool = request
            .tools
            .iter()
            .find(|tool| crate::tool::names_tool(question, &tool.name))?;
        let round = request.messages.len();
        Some(ToolCall {
            id: format!("offline-{}-{round}", tool.name),
            name: tool.name.clone(),
            input: fill_tool_input(&tool.input_schema, &tool.name, question),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelMessage, OutputSchema};
    use futures::TryStreamExt;
    use serde_json::json;

    fn ask(text: &str) -> ModelRequest {
        ModelRequest {
            messages: vec![ModelMessage::user(text)],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn stream_and_plain_reply_agree() {
        let model = OfflineChatModel::new().with_words_per_delta(2);
        let plain = model.converse(ask("What is Rust?")).await.unwrap();
        let events: Vec<_> = model
            .converse_stream(ask("What is Rust?"))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let streamed: String = events
            .iter()
            .filter_map(|e| match e {
                ModelEvent::TextDelta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(streamed, plain.text);
        assert!(events.len() > 3, "the reply comes in several pieces");
        assert!(events.contains(&ModelEvent::Stop(StopReason::EndTurn)));
        assert!(events.contains(&ModelEvent::Usage(plain.usage)));
        assert!(plain.text.contains("What is Rust?"));
        assert!(plain.usage.input_tokens > 0 && plain.usage.output_tokens > 0);
    }

    #[tokio::test]
    async fn refuses_a_conversation_that_does_not_end_with_the_user() {
        let request = ModelRequest {
            messages: vec![ModelMessage::user("a"), ModelMessage::assistant("b")],
            ..Default::default()
        };
        let err = OfflineChatModel::new().converse(request).await.unwrap_err();
        assert!(matches!(err, ModelError::InvalidRequest { .. }));
    }

    #[tokio::test]
    async fn structured_output_deserializes_into_a_nested_type() {
        #[derive(Debug, serde::Deserialize)]
        struct Persona {
            name: String,
            system_prompt: String,
            age: u32,
            tone: Tone,
            tags: Vec<String>,
            voice: Voice,
        }
        #[derive(Debug, PartialEq, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Tone {
            Warm,
            Dry,
        }
        #[derive(Debug, serde::Deserialize)]
        struct Voice {
            pitch: f64,
            accent: Option<String>,
        }
        let mut request = ask("a cheerful pirate who loves maps");
        request.output_schema = Some(OutputSchema {
            name: "persona".into(),
            description: "A persona".into(),
            schema: json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "system_prompt": {"type": "string"},
                    "age": {"type": "integer", "minimum": 18},
                    "tone": {"enum": ["warm", "dry"]},
                    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                    "voice": {
                        "type": "object",
                        "properties": {
                            "pitch": {"type": "number", "exclusiveMinimum": 0},
                            "accent": {"type": ["string", "null"]}
                        },
                        "required": ["pitch"]
                    }
                },
                "required": ["name", "system_prompt", "age", "tone", "tags", "voice"]
            }),
        });
        let reply = OfflineChatModel::new().converse(request).await.unwrap();
        assert_eq!(reply.stop_reason, StopReason::ToolUse);
        let value = reply.structured.unwrap();
        assert_eq!(value.to_string(), reply.text);
        let persona: Persona = serde_json::from_value(value).unwrap();
        assert_eq!(persona.name, "Cheerful Pirate");
        assert!(persona
            .system_prompt
            .starts_with("You are a cheerful pirate"));
        assert_eq!(persona.age, 18);
        assert_eq!(persona.tone, Tone::Warm);
        assert_eq!(persona.tags.len(), 2);
        assert_ne!(persona.tags[0], persona.tags[1]);
        assert!(persona.voice.pitch > 0.0);
        assert!(persona.voice.accent.is_some());
    }

    #[tokio::test]
    async fn max_tokens_cuts_the_reply() {
        let mut request = ask("hello");
        request.inference.max_tokens = Some(5);
        let reply = OfflineChatModel::new().converse(request).await.unwrap();
        assert_eq!(reply.stop_reason, StopReason::MaxTokens);
        assert_eq!(reply.text.chars().count(), 20);
    }
}
