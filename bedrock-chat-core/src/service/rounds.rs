//! A send's model rounds: the tools they call (the tool loop), the history trimmed when
//! it does not fit, and the reply they build.

use std::sync::Arc;

use futures::future::join_all;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Inner, Prepared, StreamEvent};
use crate::citation::Citation;
use crate::error::ModelError;
use crate::model::{ModelMessage, ModelRequest, ModelResponse, ModelStream, StopReason};
use crate::parts::Part;
use crate::tool::{Tool, ToolCall, ToolContext, ToolSpec};
use crate::types::Usage;

/// The tools registered on a service, and their specs as the model sees them.
pub(super) struct Toolbox {
    tools: Vec<Arc<dyn Tool>>,
    specs: Vec<ToolSpec>,
}

impl Toolbox {
    pub(super) fn new(tools: Vec<Arc<dyn Tool>>) -> Self {
        let specs = tools
            .iter()
            .map(|tool| ToolSpec::of(tool.as_ref()))
            .collect();
        Self { tools, specs }
    }

    pub(super) fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// Runs `calls` concurrently, each within `timeout`: their results in the calls'
    /// order. A failure of any kind is an error result for the model.
    async fn run(
        &self,
        calls: &[ToolCall],
        context: &ToolContext,
        timeout: std::time::Duration,
    ) -> Vec<(Value, bool)> {
        join_all(calls.iter().map(|call| async move {
            let Some(tool) = self.tools.iter().find(|tool| tool.name() == call.name) else {
                return (
                    Value::String(format!("there is no tool named `{}`", call.name)),
                    true,
                );
            };
            if !call.input.is_object() {
                return (
                    Value::String("the tool's input must be a JSON object".to_owned()),
                    true,
                );
            }
            match tokio::time::timeout(timeout, tool.call(context, call.input.clone())).await {
                Ok(Ok(output)) => (output, false),
                Ok(Err(error)) => (Value::String(error.message().to_owned()), true),
                Err(_) => (
                    Value::String(format!(
                        "the tool did not answer within {} s",
                        timeout.as_secs_f64()
                    )),
                    true,
                ),
            }
        }))
        .await
    }
}

/// What one model call of a send produced.
pub(super) struct Round {
    pub(super) text: String,
    /// The citations of `text`.
    pub(super) citations: Vec<Citation>,
    pub(super) reasoning: Vec<Part>,
    pub(super) calls: Vec<ToolCall>,
    pub(super) usage: Usage,
    pub(super) stop_reason: StopReason,
}

impl From<ModelResponse> for Round {
    fn from(response: ModelResponse) -> Self {
        Self {
            text: response.text,
            citations: response.citations,
            reasoning: response.reasoning,
            calls: response.tool_calls,
            usage: response.usage,
            stop_reason: response.stop_reason,
        }
    }
}

/// The reply a send builds over its rounds.
#[derive(Default)]
pub(super) struct Exchange {
    /// Every round's reasoning, text, calls and results, in order.
    pub(super) parts: Vec<Part>,
    /// The usage of every round so far.
    pub(super) usage: Usage,
    /// Tool rounds run.
    rounds: u32,
    /// Whether the model has been told that the round limit is reached (its next call is
    /// its last).
    last_call: bool,
    /// Where the new message is in the request: the turns before it are history.
    question_at: usize,
    /// Whether the history was cut once already because it did not fit (or cannot be:
    /// see [`Exchange::new`]).
    trimmed: bool,
}

/// A context estimated under this many tokens fits every chat model on Bedrock, so a send
/// that small keeps no copy of its request for a retry with a shorter history.
const SURE_FIT_TOKENS: u64 = 2_000;

impl Exchange {
    /// The exchange of a send whose first call is `request`, its context estimated at
    /// `estimated_tokens`.
    pub(super) fn new(request: &ModelRequest, estimated_tokens: u64) -> Self {
        let question_at = request.messages.len().saturating_sub(1);
        Self {
            question_at,
            // Nothing to cut, or sure to fit: no retry, so no copy of the request.
            trimmed: question_at == 0 || estimated_tokens < SURE_FIT_TOKENS,
            ..Self::default()
        }
    }

    /// After the model said the conversation does not fit its context window (an input
    /// that is too long, or the stop reason
    /// [`ModelContextWindowExceeded`](StopReason::ModelContextWindowExceeded)): drops the
    /// older half of the history from `request` and answers `true`, once a send, so that
    /// the caller calls again. `false` when it was done already or there is no history
    /// to drop.
    pub(super) fn retry_shorter(&mut self, request: &mut ModelRequest) -> bool {
        if self.trimmed || self.question_at == 0 {
            return false;
        }
        self.trimmed = true;
        let history = &request.messages[..self.question_at];
        // Drop the older half, then up to a turn the conversation can start with: a user
        // turn that is not tool results, whose calls would be cut off.
        let mut cut = history.len().div_ceil(2);
        while cut < self.question_at && !starts_cleanly(&request.messages[cut]) {
            cut += 1;
        }
        request.messages.drain(..cut);
        self.question_at -= cut;
        tracing::warn!(
            dropped_turns = cut,
            kept_turns = self.question_at,
            "the conversation did not fit the model's context window; calling again with the older half of its history left out"
        );
        true
    }
}

/// Whether a conversation can start with `turn`.
fn starts_cleanly(turn: &ModelMessage) -> bool {
    turn.role == crate::types::Role::User && !crate::tool::has_tool_parts(&turn.parts)
}

/// What follows a round.
pub(super) enum Next {
    /// The reply is complete.
    Done(StopReason),
    /// Call the model again with the request, which now holds the round and its results.
    Again,
}

impl Inner {
    /// Opens the model's stream for `request`, calling again once with a shorter history
    /// when the conversation does not fit the model's context window.
    pub(super) async fn open_stream(
        &self,
        exchange: &mut Exchange,
        request: &mut ModelRequest,
    ) -> Result<ModelStream, ModelError> {
        loop {
            let call = self.calls_request(exchange, request);
            match self.model.converse_stream(call).await {
                Err(ModelError::ContextOverflow { .. }) if exchange.retry_shorter(request) => {}
                opened => return opened,
            }
        }
    }

    /// The request for the next model call. A send that may call again (tools to run, or a
    /// history to cut if it does not fit) keeps its request; otherwise it is moved out
    /// instead of copied.
    pub(super) fn calls_request(
        &self,
        exchange: &Exchange,
        request: &mut ModelRequest,
    ) -> ModelRequest {
        match self.tools.is_empty() && exchange.trimmed {
            true => std::mem::take(request),
            false => request.clone(),
        }
    }

    /// Takes a round into the exchange. When it calls tools (and tools are registered),
    /// runs them (or, past the round limit, answers them with errors), tells `events`,
    /// and appends the round and its results to `request` for the next call.
    pub(super) async fn after_round(
        &self,
        exchange: &mut Exchange,
        round: Round,
        request: &mut ModelRequest,
        prepared: &Prepared,
        events: Option<&mpsc::UnboundedSender<StreamEvent>>,
    ) -> Next {
        exchange.usage += round.usage;
        let mut turn = round.reasoning;
        if !round.text.is_empty() {
            turn.push(Part::cited_text(round.text, round.citations));
        }
        if round.calls.is_empty() || self.tools.is_empty() {
            // The usual reply, one round: its parts as they are, not copied.
            match exchange.parts.is_empty() {
                true => exchange.parts = turn,
                false => exchange.parts.extend(turn),
            }
            return Next::Done(round.stop_reason);
        }
        turn.extend(round.calls.iter().map(ToolCall::to_part));
        let policy = &self.policy;
        let told_the_limit = exchange.last_call;
        let outputs = if exchange.rounds < policy.max_tool_rounds {
            exchange.rounds += 1;
            let mut context =
                ToolContext::new(prepared.meta.user.clone(), prepared.target.chat_id());
            context.request_id = prepared.meta.request_id.clone();
            self.tools
                .run(&round.calls, &context, policy.tool_timeout)
                .await
        } else {
            exchange.last_call = true;
            let refusal = format!(
                "the limit of {} tool rounds for one message is reached; answer with what \
                 you have",
                policy.max_tool_rounds
            );
            vec![(Value::String(refusal), true); round.calls.len()]
        };
        let results: Vec<Part> = round
            .calls
            .iter()
            .zip(outputs)
            .map(|(call, (output, is_error))| {
                if let Some(events) = events {
                    let _ = events.send(StreamEvent::ToolCall(call.clone()));
                    let _ = events.send(StreamEvent::ToolResult {
                        tool_use_id: call.id.clone(),
                        name: call.name.clone(),
                        output: output.clone(),
                        is_error,
                    });
                }
                Part::ToolResult {
                    tool_use_id: call.id.clone(),
                    output,
                    is_error,
                }
            })
            .collect();
        exchange.parts.extend(turn.iter().cloned());
        exchange.parts.extend(results.iter().cloned());
        if told_the_limit {
            // The model asked again after it was told the limit: the results stay stored
            // (the next turn must answer every call) and the reply ends here.
            return Next::Done(round.stop_reason);
        }
        request
            .messages
            .push(ModelMessage::assistant(String::new()).with_parts(turn));
        request
            .messages
            .push(ModelMessage::user(String::new()).with_parts(results));
        Next::Again
    }
}
