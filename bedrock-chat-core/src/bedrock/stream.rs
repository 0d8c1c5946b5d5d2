//! ConverseStream: opening the stream, and reading it as a [`ModelStream`] that times out
//! when the model goes silent, retries a stream that fails before its first event, and
//! ends with the error that broke it.

use std::collections::VecDeque;
use std::sync::Arc;

use aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{
    ContentBlockDelta, ContentBlockStart, ConverseStreamOutput, ReasoningContentBlockDelta,
};
use futures::StreamExt;

use super::classify::{classify_call, classify_stream};
use super::request::ConverseParts;
use super::response::{citation, stop_reason, usage};
use super::Shared;
use crate::citation::Citation;
use crate::error::ModelError;
use crate::model::{ModelEvent, ModelStream};
use crate::tool::ToolCall;

type Receiver = EventReceiver<ConverseStreamOutput, ConverseStreamOutputError>;

/// Sends the ConverseStream request (the SDK retries a refused one) and returns the
/// stream of events once the response has started.
///
/// # Errors
/// The classified failure of the request.
pub(crate) async fn open(shared: &Shared, parts: &ConverseParts) -> Result<Receiver, ModelError> {
    let output = shared
        .client
        .converse_stream()
        .model_id(&shared.config.model_id)
        .set_messages(Some(parts.messages.clone()))
        .set_system(parts.system.clone())
        .set_inference_config(parts.inference.clone())
        .set_tool_config(parts.tool_config.clone())
        .set_guardrail_config(parts.stream_guardrail())
        .set_additional_model_request_fields(parts.additional_fields.clone())
        .set_service_tier(parts.service_tier.clone())
        .set_performance_config(parts.performance.clone())
        .set_request_metadata(parts.request_metadata.clone())
        .set_output_config(parts.output_config.clone())
        .send()
        .await
        .map_err(classify_call)?;
    Ok(output.stream)
}

struct State {
    shared: Arc<Shared>,
    parts: Arc<ConverseParts>,
    receiver: Receiver,
    /// Stream attempts made so far.
    attempts: u32,
    /// Whether an event was handed to the caller: after that, a retry would repeat text.
    emitted: bool,
    /// Whether `messageStop` arrived: the reply is complete.
    stopped: bool,
    done: bool,
    /// The tool call being streamed (an offered tool's): its id, name and input so far.
    tool: Option<(String, String, String)>,
    /// Characters of text streamed so far.
    chars: usize,
    /// The content block text is streaming into (its index, and `chars` when it began),
    /// and the citations of that block, whose spans end with it.
    block: Option<(i32, usize)>,
    cited: Vec<Citation>,
    /// Events ready for the caller, in order.
    ready: VecDeque<ModelEvent>,
}

/// The events of an opened stream.
pub(crate) fn events(
    shared: Arc<Shared>,
    parts: Arc<ConverseParts>,
    receiver: Receiver,
) -> ModelStream {
    let state = State {
        shared,
        parts,
        receiver,
        attempts: 1,
        emitted: false,
        stopped: false,
        done: false,
        tool: None,
        chars: 0,
        block: None,
        cited: Vec::new(),
        ready: VecDeque::new(),
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        let item = state.next_event().await;
        match &item {
            Some(Ok(_)) => state.emitted = true,
            Some(Err(_)) | None => state.done = true,
        }
        item.map(|item| (item, state))
    })
    .boxed()
}

impl State {
    /// The next event for the caller, the error that ends the stream, or `None` at its
    /// end.
    async fn next_event(&mut self) -> Option<Result<ModelEvent, ModelError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            let idle = self.shared.config.stream_idle_timeout;
            let error = match tokio::time::timeout(idle, self.receiver.recv()).await {
                Ok(Ok(Some(event))) => {
                    self.take(event);
                    continue;
                }
                Ok(Ok(None)) if self.stopped => return None,
                Ok(Ok(None)) => {
                    ModelError::model_failure("the reply stream ended before the model finished")
                }
                Ok(Err(e)) => classify_stream(e),
                Err(elapsed) => ModelError::timeout(format!(
                    "the model sent nothing for {} ms",
                    idle.as_millis()
                ))
                .with_source(elapsed),
            };
            match self.reopen_or_give_back(error).await {
                Ok(()) => continue,
                Err(error) => return Some(Err(error)),
            }
        }
    }

    /// Opens the stream again when `error` came before any event and may pass, within the
    /// attempts allowed; otherwise gives `error` back.
    async fn reopen_or_give_back(&mut self, error: ModelError) -> Result<(), ModelError> {
        let max = self.shared.config.max_attempts;
        if self.emitted || !error.is_retryable() || self.attempts >= max {
            return Err(error);
        }
        let wait = error
            .retry_after()
            .unwrap_or_else(|| self.shared.config.stream_backoff(self.attempts));
        tracing::debug!(
            model = %self.shared.config.model_id,
            attempt = self.attempts,
            wait_ms = wait.as_millis() as u64,
            error = %error,
            "the reply stream failed before its first event; opening it again"
        );
        tokio::time::sleep(wait).await;
        self.attempts += 1;
        // Nothing reached the caller: the new stream starts the text afresh.
        (self.chars, self.block) = (0, None);
        self.cited.clear();
        self.receiver = open(&self.shared, &self.parts).await?;
        Ok(())
    }

    /// Whether `name` is the structured output's forced tool, whose input streams as text.
    fn is_output_tool(&self, name: &str) -> bool {
        self.parts
            .output_schema
            .as_ref()
            .is_some_and(|schema| schema.name == name)
    }

    /// Queues the events for the caller that `event` makes, in order.
    fn take(&mut self, event: ConverseStreamOutput) {
        let index = match &event {
            ConverseStreamOutput::ContentBlockDelta(delta) => Some(delta.content_block_index),
            _ => None,
        };
        let ends_block = matches!(
            event,
            ConverseStreamOutput::ContentBlockStop(_) | ConverseStreamOutput::MessageStop(_)
        );
        if ends_block || index.is_some_and(|i| self.block.is_some_and(|(b, _)| b != i)) {
            self.end_block();
        }
        if let Some(index) = index {
            self.block.get_or_insert((index, self.chars));
        }
        if let Some(event) = self.map(event) {
            if let ModelEvent::TextDelta(text) = &event {
                self.chars += text.chars().count();
            }
            self.ready.push_back(event);
        }
    }

    /// Ends the content block being streamed: its citations span its text.
    fn end_block(&mut self) {
        if let Some((_, start)) = self.block.take() {
            let end = self.chars;
            self.ready.extend(self.cited.drain(..).map(|mut citation| {
                citation.start = start;
                citation.end = end;
                ModelEvent::Citation(citation)
            }));
        }
    }

    /// The event for the caller, if `event` is one: reasoning, text (or, for structured
    /// output, the tool input's JSON text), an offered tool's whole call once its block
    /// ends, the stop reason, the usage. A citation is kept until its block ends.
    fn map(&mut self, event: ConverseStreamOutput) -> Option<ModelEvent> {
        match event {
            ConverseStreamOutput::ContentBlockDelta(delta) => match delta.delta {
                Some(ContentBlockDelta::Text(text)) if !text.is_empty() => {
                    Some(ModelEvent::TextDelta(text))
                }
                Some(ContentBlockDelta::Citation(cited)) => {
                    self.cited.push(citation(
                        0,
                        0,
                        cited.title(),
                        cited
                            .source_content()
                            .iter()
                            .filter_map(|s| s.text.as_ref()),
                        cited.location(),
                    ));
                    None
                }
                Some(ContentBlockDelta::ReasoningContent(reasoning)) => match reasoning {
                    ReasoningContentBlockDelta::Text(text) if !text.is_empty() => {
                        Some(ModelEvent::ReasoningDelta(text))
                    }
                    ReasoningContentBlockDelta::Signature(signature) => {
                        Some(ModelEvent::ReasoningSignature(signature))
                    }
                    ReasoningContentBlockDelta::RedactedContent(data) => Some(
                        ModelEvent::RedactedReasoning(bytes::Bytes::from(data.into_inner())),
                    ),
                    _ => None,
                },
                Some(ContentBlockDelta::ToolUse(tool)) => match &mut self.tool {
                    Some((_, _, input)) => {
                        input.push_str(&tool.input);
                        None
                    }
                    None if !tool.input.is_empty() => Some(ModelEvent::TextDelta(tool.input)),
                    None => None,
                },
                _ => None,
            },
            ConverseStreamOutput::ContentBlockStart(start) => match start.start {
                Some(ContentBlockStart::ToolUse(tool)) if !self.is_output_tool(&tool.name) => {
                    self.tool = Some((tool.tool_use_id, tool.name, String::new()));
                    None
                }
                _ => None,
            },
            ConverseStreamOutput::ContentBlockStop(_) => {
                let (id, name, input) = self.tool.take()?;
                // Bedrock sends no input delta for a call without arguments. Input that is
                // not JSON stays a string, which the service answers with an error result.
                let input = match input.trim() {
                    "" => serde_json::json!({}),
                    text => serde_json::from_str(text)
                        .unwrap_or_else(|_| serde_json::Value::String(input.clone())),
                };
                Some(ModelEvent::ToolCall(ToolCall { id, name, input }))
            }
            ConverseStreamOutput::MessageStop(stop) => {
                self.stopped = true;
                Some(ModelEvent::Stop(stop_reason(&stop.stop_reason)))
            }
            ConverseStreamOutput::Metadata(metadata) => {
                metadata.usage.as_ref().map(|u| ModelEvent::Usage(usage(u)))
            }
            _ => None,
        }
    }
}
