//! The HTTP side of the fake: accepting connections, routing `/model/{modelId}/{operation}`,
//! recording requests, checking the model id, and answering from the script.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::converse::{self, Limits};
use super::invoke;
use super::plan::{Plan, PromptCache};
use super::script::{status_of, Fault, Operation, RecordedRequest, Scripted, Timing};
use super::stream::{spawn_stream, upper_camel};
use super::wire::{error_response, json_response, response, validation_error, Body};

/// The largest request body accepted (Bedrock's own limit is about this size).
const MAX_BODY_BYTES: usize = 20 * 1024 * 1024;

/// Which model ids exist, and which the caller may not use.
#[derive(Debug, Default)]
pub(crate) struct Models {
    pub(crate) known: HashSet<String>,
    pub(crate) denied: HashSet<String>,
    pub(crate) accept_any: bool,
}

impl Models {
    /// Whether `id` names a model: a known id, itself or behind a cross-region inference
    /// profile prefix (`us.`, `eu.`, `apac.`, `global.`) or at the end of an ARN.
    fn knows(&self, id: &str) -> bool {
        if self.accept_any {
            return !id.is_empty();
        }
        let tail = id.rsplit('/').next().unwrap_or(id);
        let base = ["us.", "eu.", "apac.", "global."]
            .iter()
            .find_map(|prefix| tail.strip_prefix(prefix))
            .unwrap_or(tail);
        self.known.contains(tail) || self.known.contains(base)
    }
}

/// Everything the fake knows, shared by the handle and the connections.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) script: Mutex<VecDeque<Scripted>>,
    pub(crate) requests: Mutex<Vec<RecordedRequest>>,
    pub(crate) timing: Mutex<Timing>,
    pub(crate) models: Mutex<Models>,
    pub(crate) limits: Mutex<Limits>,
    pub(crate) prompt_cache: Mutex<PromptCache>,
}

/// Locks `mutex`, also after a panic elsewhere: the data is plain and stays usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Accepts connections until `shutdown`; each connection stops then too.
pub(crate) async fn serve(listener: TcpListener, state: Arc<State>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(%error, "fake bedrock could not accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Event frames are small; Nagle's algorithm would hold them back.
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&state), request));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = connection => {}
            }
        });
    }
}

/// CountTokens for a Converse input: validated as a Converse request (a conversation over
/// the context window is counted, not refused), answered with its input tokens.
fn count_tokens(body: &Value, model_id: &str, limits: converse::Limits) -> Response<Body> {
    let Some(input) = body.pointer("/input/converse") else {
        return validation_error("CountTokens needs input.converse (a Converse request).");
    };
    let limits = converse::Limits {
        context_window_tokens: u64::MAX,
        ..limits
    };
    let ask = converse::read_request(input, limits).and_then(|mut ask| {
        converse::read_thinking(input, model_id, &mut ask)?;
        Ok(ask)
    });
    match ask {
        Ok(ask) => json_response(
            200,
            &serde_json::json!({ "inputTokens": ask.input_tokens() }),
            &[],
        ),
        Err(message) => validation_error(&message),
    }
}

/// The operation and the percent-decoded model id of a path, if it names one.
fn route(method: &Method, path: &str) -> Option<(Operation, String)> {
    if method != Method::POST {
        return None;
    }
    let mut segments = path.strip_prefix('/')?.split('/');
    let (Some("model"), Some(id), Some(operation), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return None;
    };
    let operation = match operation {
        "converse" => Operation::Converse,
        "converse-stream" => Operation::ConverseStream,
        "invoke" => Operation::InvokeModel,
        "invoke-with-response-stream" => Operation::InvokeModelWithResponseStream,
        "count-tokens" => Operation::CountTokens,
        _ => return None,
    };
    let id = percent_encoding::percent_decode_str(id)
        .decode_utf8()
        .ok()?
        .into_owned();
    Some((operation, id))
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = request.into_parts();
    let Some((operation, model_id)) = route(&parts.method, parts.uri.path()) else {
        return Ok(error_response(
            404,
            "UnknownOperationException",
            "The requested operation is not supported by this fake Bedrock.",
            None,
        ));
    };
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(validation_error(
                "The request body is too large or was cut off.",
            ))
        }
    };
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    lock(&state.requests).push(RecordedRequest {
        operation,
        model_id: model_id.clone(),
        body: body.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
    });
    Ok(answer(&state, operation, &model_id, &body).await)
}

async fn answer(
    state: &State,
    operation: Operation,
    model_id: &str,
    body: &Value,
) -> Response<Body> {
    {
        let models = lock(&state.models);
        if !models.knows(model_id) {
            return validation_error("The provided model identifier is invalid.");
        }
        if models.denied.contains(model_id) {
            return error_response(
                403,
                "AccessDeniedException",
                "You don't have access to the model with the specified model ID.",
                None,
            );
        }
    }
    if body.is_null() {
        return validation_error(
            "Malformed input request, please reformat your input and try again.",
        );
    }
    let limits = *lock(&state.limits);
    if operation == Operation::CountTokens {
        return count_tokens(body, model_id, limits);
    }
    let ask = match operation {
        Operation::Converse | Operation::ConverseStream | Operation::CountTokens => {
            converse::read_request(body, limits)
        }
        Operation::InvokeModel | Operation::InvokeModelWithResponseStream => {
            invoke::read_request(body, limits)
        }
    };
    let ask = ask.and_then(|mut ask| {
        if matches!(operation, Operation::Converse | Operation::ConverseStream) {
            converse::read_thinking(body, model_id, &mut ask)?;
            converse::read_output_config(body, model_id, &mut ask)?;
            converse::read_citations(body, model_id, &mut ask)?;
        } else {
            invoke::read_thinking(body, model_id, &mut ask)?;
        }
        Ok(ask)
    });
    let ask = match ask {
        Ok(ask) => ask,
        Err(message) => return validation_error(&message),
    };
    let timing = *lock(&state.timing);
    let scripted = lock(&state.script).pop_front();
    // Scripted usage is reported as scripted; otherwise cache points are accounted.
    let usage_scripted = matches!(&scripted, Some(Scripted::Reply(r)) if r.usage.is_some());
    let (mut plan, fault) = match scripted {
        Some(Scripted::Fault(Fault::Http {
            status,
            error_type,
            message,
            retry_after_secs,
        })) => return error_response(status, &error_type, &message, retry_after_secs),
        Some(Scripted::Fault(fault)) => (Plan::echo(&ask, timing), Some(fault)),
        Some(Scripted::Reply(reply)) => (Plan::from_reply(reply, &ask, timing), None),
        None => (Plan::echo(&ask, timing), None),
    };
    if !usage_scripted {
        plan.usage = lock(&state.prompt_cache).account(model_id, &ask.cache_points, plan.usage);
    }
    if operation.is_stream() {
        let frames = match operation {
            Operation::ConverseStream => converse::stream_frames(&plan),
            _ => invoke::stream_frames(&plan, model_id),
        };
        return spawn_stream(frames, plan.time_to_first_token, plan.delta_delay, fault);
    }
    plain_answer(operation, model_id, plan, fault).await
}

/// A whole answer, after the time the stream would have taken; stream faults become their
/// plain counterparts.
async fn plain_answer(
    operation: Operation,
    model_id: &str,
    plan: Plan,
    fault: Option<Fault>,
) -> Response<Body> {
    let duration = plan.duration();
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
    match fault {
        Some(Fault::Exception {
            exception_type,
            message,
            ..
        }) => {
            let error_type = upper_camel(&exception_type);
            return error_response(status_of(&error_type), &error_type, &message, None);
        }
        Some(Fault::Stall { .. }) => {
            // Never answers; the connection closes when the client gives up or the server
            // stops.
            std::future::pending::<()>().await;
        }
        Some(Fault::MalformedFrame { .. }) => {
            return response(
                200,
                &[("content-type", "application/json".to_owned())],
                http_body_util::Full::new(Bytes::from_static(b"{\"output\": {\"mess")).boxed(),
            );
        }
        Some(Fault::Http { .. }) | None => {}
    }
    match operation {
        Operation::InvokeModel => json_response(
            200,
            &invoke::answer(&plan, model_id),
            &invoke::answer_headers(&plan),
        ),
        _ => json_response(200, &converse::answer(&plan), &[]),
    }
}
