//! ConverseStream: opening the stream, and reading it as a [`ModelStream`] that times out
//! when the model goes silent, retries a stream that fails before its first event, and
//! ends with the error that broke it.

use std::sync::Arc;

use aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{
    ContentBlockDelta, ContentBlockStart, ConverseStreamOutput, ReasoningContentBlockDelta,
};
use futures::StreamExt;

use super::classify::{classify_call, classify_stream};
use super::request::ConverseParts;
use super::response::{stop_reason, usage};
use super::Shared;
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
            let idle = self.shared.config.stream_idle_timeout;
            let error = match tokio::time::timeout(idle, self.receiver.recv()).await {
                Ok(Ok(Some(event))) => match self.map(event) {
                    Some(event) => return Some(Ok(event)),
                    None => continue,
                },
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

    /// The event for the caller, if `event` is one: reasoning, text (or, for structured
    /// output, the tool input's JSON text), an offered tool's whole call once its block
    /// ends, the stop reason, the usage.
    fn map(&mut self, event: ConverseStreamOutput) -> Option<ModelEvent> {
        match event {
            ConverseStreamOutput::ContentBlockDelta(delta) => match delta.delta {
                Some(ContentBlockDelta::Text(text)) if !text.is_empty() => {
                    Some(ModelEvent::TextDelta(text))
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
