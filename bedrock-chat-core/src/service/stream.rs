//! Streamed sends: the generation task and the [`ChatStream`] a caller reads.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::rounds::{Exchange, Next, Round};
use super::{ChatReply, Inner, Prepared};
use crate::citation::Citation;
use crate::context::part_tokens;
use crate::error::{ChatError, ModelError};
use crate::ids::{ChatId, MessageId};
use crate::limiter::Decision;
use crate::model::{ModelEvent, ModelRequest, ModelStream, StopReason};
use crate::parts::{Binary, Part};
use crate::tool::ToolCall;
use crate::types::Usage;

/// One event of a streamed send: `Started`, the model's reasoning if it reasons (any
/// number of `Reasoning`s), any number of `Delta`s, then `Completed` or `Failed`. With
/// tools, each round of calls comes as `ToolCall` / `ToolResult` pairs, and the next
/// round's `Reasoning`s and `Delta`s follow.
///
/// New kinds of event may be added: a `match` needs a `_` arm, and a host ignores events
/// it does not know.
#[derive(Debug)]
#[non_exhaustive]
pub enum StreamEvent {
    /// The ids of the exchange, before any text.
    Started {
        /// The conversation (new or continued).
        chat_id: ChatId,
        /// The user message's id.
        message_uid: MessageId,
        /// The reply's id.
        response_session_id: MessageId,
        /// The model answering.
        model: String,
        /// The request limiter's decision, if one was consulted.
        rate_limit: Option<Decision>,
    },
    /// The next piece of the model's reasoning, before the reply's text (asked for with
    /// [`InferenceConfig::reasoning_budget`](crate::InferenceConfig::reasoning_budget)).
    /// Show it apart from the answer; the stored reply keeps it
    /// ([`ChatReply::reasoning`]).
    Reasoning(String),
    /// The next piece of the reply.
    Delta(String),
    /// The reply's text so far rests on a passage of a document (asked for with
    /// [`InferenceConfig::citations`](crate::InferenceConfig::citations)): the citation,
    /// and the words of the reply it supports. The stored reply keeps it with its text
    /// part ([`ChatReply::citations`]).
    Citation {
        /// The citation; its span counts characters of this model round's text.
        citation: Citation,
        /// The words of the reply it supports.
        cited_text: String,
    },
    /// The model calls a registered tool (see [`crate::tool`]); its
    /// [`ToolResult`](Self::ToolResult) follows once the tool has answered, and the reply
    /// goes on.
    ToolCall(ToolCall),
    /// A tool's answer to a [`ToolCall`](Self::ToolCall), as the model receives it: its
    /// output, or an error message when `is_error`.
    ToolResult {
        /// The call's id.
        tool_use_id: String,
        /// The tool's name.
        name: String,
        /// What the tool returned (or why it failed).
        output: serde_json::Value,
        /// Whether the call failed.
        is_error: bool,
    },
    /// The reply is complete and stored.
    Completed(Box<ChatReply>),
    /// The reply failed; nothing was stored, and a retry with the same `message_uid` may
    /// be made.
    Failed(ChatError),
}

/// The events of a streamed send. Dropping it does not stop the reply from being
/// generated and stored.
#[derive(Debug)]
pub struct ChatStream {
    events: mpsc::UnboundedReceiver<StreamEvent>,
}

impl ChatStream {
    /// A stream over an exchange stored earlier: its ids, its whole reasoning and text,
    /// its citations, done.
    pub(super) fn replay(reply: ChatReply) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let citations: Vec<StreamEvent> = reply
            .citations()
            .into_iter()
            .map(|(cited, citation)| StreamEvent::Citation {
                citation: citation.clone(),
                cited_text: cited.to_owned(),
            })
            .collect();
        let events = [
            Some(started(
                &reply.chat_id,
                &reply.message_uid,
                &reply.model,
                reply.rate_limit,
            )),
            reply.reasoning().map(StreamEvent::Reasoning),
            Some(StreamEvent::Delta(reply.answer.content.clone())),
        ]
        .into_iter()
        .flatten()
        .chain(citations)
        .chain([StreamEvent::Completed(Box::new(reply))]);
        for event in events {
            // The receiver is held right here; the send cannot fail.
            let _ = tx.send(event);
        }
        Self { events: rx }
    }

    /// Reads the stream to its end: the stored reply, or the error that ended it.
    ///
    /// # Errors
    /// The [`ChatError`] of a [`StreamEvent::Failed`].
    pub async fn collect_reply(mut self) -> Result<ChatReply, ChatError> {
        while let Some(event) = self.next().await {
            match event {
                StreamEvent::Completed(reply) => return Ok(*reply),
                StreamEvent::Failed(error) => return Err(error),
                StreamEvent::Started { .. }
                | StreamEvent::Reasoning(_)
                | StreamEvent::Delta(_)
                | StreamEvent::Citation { .. }
                | StreamEvent::ToolCall(_)
                | StreamEvent::ToolResult { .. } => {}
            }
        }
        Err(ModelError::model_failure("the generation task ended without a result").into())
    }
}

impl Stream for ChatStream {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        self.events.poll_recv(cx)
    }
}

fn started(
    chat_id: &ChatId,
    message_uid: &MessageId,
    model: &str,
    rate_limit: Option<Decision>,
) -> StreamEvent {
    StreamEvent::Started {
        chat_id: *chat_id,
        message_uid: *message_uid,
        response_session_id: message_uid.reply_id(),
        model: model.to_owned(),
        rate_limit,
    }
}

/// Spawns the task that reads the model's stream, forwards it, runs the tools it calls
/// (opening the next round's stream), and stores the reply.
pub(super) fn spawn_generation(
    inner: Arc<Inner>,
    prepared: Prepared,
    exchange: Exchange,
    request: ModelRequest,
    model_stream: ModelStream,
    started_at: Instant,
) -> ChatStream {
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = tx.send(started(
        &prepared.target.chat_id(),
        &prepared.message_uid,
        inner.model.model_id(),
        prepared.rate_limit,
    ));
    let tasks = inner.tasks.clone();
    tasks.spawn(async move {
        let outcome = generate(
            &inner,
            prepared,
            exchange,
            request,
            model_stream,
            started_at,
            &tx,
        )
        .await;
        // A closed channel means the caller went away; the reply is stored regardless.
        let _ = tx.send(match outcome {
            Ok(reply) => StreamEvent::Completed(Box::new(reply)),
            Err(error) => StreamEvent::Failed(error),
        });
    });
    ChatStream { events: rx }
}

async fn generate(
    inner: &Inner,
    prepared: Prepared,
    mut exchange: Exchange,
    mut request: ModelRequest,
    mut model_stream: ModelStream,
    started_at: Instant,
    tx: &mpsc::UnboundedSender<StreamEvent>,
) -> Result<ChatReply, ChatError> {
    loop {
        let round = match read_round(inner, &prepared, model_stream, tx).await {
            Ok(round) => round,
            Err((error, partial)) => {
                let error = ChatError::from(error);
                inner
                    .failed(
                        &prepared,
                        &exchange,
                        started_at.elapsed(),
                        &error,
                        partial.text.chars().count(),
                        partial.reasoning.chars,
                    )
                    .await;
                return Err(error);
            }
        };
        // A reply cut off by the context window, before anything was shown, is made
        // again from a shorter history.
        let unseen = round.text.is_empty() && round.reasoning.is_empty();
        let retry = round.stop_reason == StopReason::ModelContextWindowExceeded
            && unseen
            && exchange.retry_shorter(&mut request);
        if retry {
            exchange.usage += round.usage;
        } else {
            let next = inner
                .after_round(&mut exchange, round, &mut request, &prepared, Some(tx))
                .await;
            if let Next::Done(stop_reason) = next {
                return inner
                    .finish(prepared, exchange, stop_reason, started_at.elapsed())
                    .await;
            }
        }
        model_stream = match inner.open_stream(&mut exchange, &mut request).await {
            Ok(stream) => stream,
            Err(error) => {
                let error = ChatError::from(error);
                inner
                    .failed(&prepared, &exchange, started_at.elapsed(), &error, 0, 0)
                    .await;
                return Err(error);
            }
        };
    }
}

/// What a round streamed before it broke off, for the audit; it is never stored.
#[derive(Default)]
struct Partial {
    text: String,
    reasoning: Reasoning,
}

/// Reads one model call's stream to its end, forwarding reasoning and text.
async fn read_round(
    inner: &Inner,
    prepared: &Prepared,
    mut model_stream: ModelStream,
    tx: &mpsc::UnboundedSender<StreamEvent>,
) -> Result<Round, (ModelError, Partial)> {
    let idle = inner.policy.stream_idle_timeout;
    let mut partial = Partial::default();
    let mut calls = Vec::new();
    let mut citations = Vec::new();
    let mut stop_reason = None;
    let mut usage = None;
    let result: Result<(), ModelError> = async {
        loop {
            let next = tokio::time::timeout(idle, model_stream.next())
                .await
                .map_err(|elapsed| {
                    ModelError::timeout(format!("the model sent nothing for {}s", idle.as_secs()))
                        .with_source(elapsed)
                })?;
            let reasoning = &mut partial.reasoning;
            match next {
                None => return Ok(()),
                Some(Err(error)) => return Err(error),
                Some(Ok(ModelEvent::TextDelta(delta))) => {
                    partial.text.push_str(&delta);
                    let _ = tx.send(StreamEvent::Delta(delta));
                }
                Some(Ok(ModelEvent::ReasoningDelta(delta))) => {
                    reasoning.text.push_str(&delta);
                    reasoning.chars += delta.chars().count();
                    let _ = tx.send(StreamEvent::Reasoning(delta));
                }
                Some(Ok(ModelEvent::ReasoningSignature(signature))) => {
                    reasoning.close(Some(signature));
                }
                Some(Ok(ModelEvent::RedactedReasoning(data))) => {
                    reasoning.close(None);
                    reasoning.parts.push(Part::RedactedReasoning {
                        data: Binary::Bytes(data),
                    });
                }
                Some(Ok(ModelEvent::Citation(citation))) => {
                    let cited_text = citation.cited_in(&partial.text).to_owned();
                    citations.push(citation.clone());
                    let _ = tx.send(StreamEvent::Citation {
                        citation,
                        cited_text,
                    });
                }
                Some(Ok(ModelEvent::ToolCall(call))) => calls.push(call),
                Some(Ok(ModelEvent::Stop(reason))) => stop_reason = Some(reason),
                Some(Ok(ModelEvent::Usage(u))) => usage = Some(u),
            }
        }
    }
    .await;

    let stop_reason = match (result, stop_reason) {
        (Ok(()), Some(reason)) => reason,
        (Err(error), _) => return Err((error, partial)),
        (Ok(()), None) => {
            let error =
                ModelError::model_failure("the reply stream ended before the model finished");
            return Err((error, partial));
        }
    };
    let Partial { text, reasoning } = partial;
    let reasoning = reasoning.into_parts();
    let usage = usage.unwrap_or_else(|| estimated_usage(inner, prepared, &text, &reasoning));
    Ok(Round {
        text,
        citations,
        reasoning,
        calls,
        usage,
        stop_reason,
    })
}

/// The reasoning of a streamed reply, gathered into parts as its blocks close.
#[derive(Default)]
struct Reasoning {
    /// Closed blocks, in order.
    parts: Vec<Part>,
    /// The text of the block being streamed.
    text: String,
    /// Characters of reasoning text streamed, for the audit.
    chars: usize,
}

impl Reasoning {
    /// Ends the block being streamed, if any text came, with its signature.
    fn close(&mut self, signature: Option<String>) {
        if self.text.is_empty() && signature.is_none() {
            return;
        }
        self.parts.push(Part::Reasoning {
            text: std::mem::take(&mut self.text),
            signature,
        });
    }

    /// The parts, the block still open (a model that streamed no signature) included.
    fn into_parts(mut self) -> Vec<Part> {
        self.close(None);
        self.parts
    }
}

/// Usage for a model that streamed no usage figures: estimated, reasoning included, so
/// budgets still count.
fn estimated_usage(inner: &Inner, prepared: &Prepared, reply: &str, reasoning: &[Part]) -> Usage {
    let reasoning: u64 = reasoning
        .iter()
        .map(|part| part_tokens(inner.estimator.as_ref(), part))
        .sum();
    Usage::new(
        prepared.estimated_input_tokens,
        inner.estimator.estimate(reply) + reasoning,
    )
}
