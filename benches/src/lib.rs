//! Helpers shared by the benchmarks.

use async_trait::async_trait;
use bedrock_chat_core::{
    ChatModel, ModelError, ModelEvent, ModelRequest, ModelResponse, ModelStream, StopReason, Usage,
};
use futures::StreamExt;

/// A model that answers at once with a fixed short reply, so that a benchmark measures
/// everything around the model and nothing of it.
#[derive(Clone, Copy, Debug, Default)]
pub struct InstantModel;

const REPLY: &str = "A short, fixed reply from the instant benchmark model.";

#[async_trait]
impl ChatModel for InstantModel {
    fn model_id(&self) -> &str {
        "instant"
    }

    async fn converse(&self, _request: ModelRequest) -> Result<ModelResponse, ModelError> {
        Ok(ModelResponse {
            reasoning: Vec::new(),
            text: REPLY.to_owned(),
            structured: None,
            tool_calls: Vec::new(),
            citations: Vec::new(),
            usage: Usage::new(20, 12),
            stop_reason: StopReason::EndTurn,
            latency: std::time::Duration::ZERO,
        })
    }

    async fn converse_stream(&self, _request: ModelRequest) -> Result<ModelStream, ModelError> {
        let events = REPLY
            .split_inclusive(' ')
            .map(|w| Ok(ModelEvent::TextDelta(w.to_owned())))
            .chain([
                Ok(ModelEvent::Stop(StopReason::EndTurn)),
                Ok(ModelEvent::Usage(Usage::new(20, 12))),
            ])
            .collect::<Vec<_>>();
        Ok(futures::stream::iter(events).boxed())
    }
}
