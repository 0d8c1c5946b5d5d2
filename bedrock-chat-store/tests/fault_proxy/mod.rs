//! A fault-injecting HTTP proxy between a DynamoDB client and moto: it forwards every
//! request, except that it answers chosen operations (matched on `X-Amz-Target`) as
//! DynamoDB does under contention: `TransactWriteItems` with a
//! `TransactionCanceledException` carrying cancellation reasons, other operations with an
//! error such as `TransactionConflictException`.
//! moto runs one request at a time and never cancels a transaction for a conflict, so this
//! is how the tests see what real DynamoDB does under contention.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// An error to answer with. For `TransactWriteItems`, a cancellation: the reason `code`
/// for the item at `position`, `None` for the others. For other operations, the exception
/// `code` (`TransactionConflictException`, ...).
#[derive(Clone, Debug)]
pub(crate) struct Fault {
    /// The operation, as in `X-Amz-Target` after the dot (`TransactWriteItems`).
    pub(crate) operation: &'static str,
    /// `TransactionConflict`, `ThrottlingError`, `ConditionalCheckFailed`, ... or, for
    /// other operations, an exception name.
    pub(crate) code: &'static str,
    /// The position in the transaction of the item at fault.
    pub(crate) position: usize,
}

#[derive(Default)]
struct State {
    /// Faults still to answer with, first first.
    pending: Vec<Fault>,
    /// Every `n`-th request of an operation (counted from when it was set) is answered
    /// with the fault.
    every: Option<(usize, Fault, usize)>,
    /// Requests seen per operation, faults included.
    seen: HashMap<String, usize>,
    /// Faults answered per operation.
    injected: HashMap<String, usize>,
}

/// The proxy; it runs until the test's runtime ends.
#[derive(Clone)]
pub(crate) struct FaultProxy {
    endpoint: String,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`).
    pub(crate) async fn start(upstream: &str) -> Self {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the DynamoDB endpoint is http://IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(handle(request, upstream, state).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { endpoint, state }
    }

    /// The address to give the client.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Answers the next `times` requests of `fault.operation` with `fault`.
    pub(crate) fn fail_next(&self, times: usize, fault: Fault) {
        let mut state = self.state.lock().expect("state");
        state.pending.extend(std::iter::repeat_n(fault, times));
    }

    /// Answers every `n`-th request of `fault.operation` from now on with `fault`.
    pub(crate) fn fail_every(&self, n: usize, fault: Fault) {
        self.state.lock().expect("state").every = Some((n, fault, 0));
    }

    /// Requests of `operation` seen so far, answered by moto or by a fault.
    pub(crate) fn seen(&self, operation: &str) -> usize {
        let state = self.state.lock().expect("state");
        state.seen.get(operation).copied().unwrap_or(0)
    }

    /// Faults answered for `operation` so far.
    pub(crate) fn injected(&self, operation: &str) -> usize {
        let state = self.state.lock().expect("state");
        state.injected.get(operation).copied().unwrap_or(0)
    }
}

/// The fault to answer `operation` with now, if any, counting the request.
fn take_fault(state: &Mutex<State>, operation: &str) -> Option<Fault> {
    let mut state = state.lock().expect("state");
    *state.seen.entry(operation.to_owned()).or_default() += 1;
    let fault = if let Some(i) = state.pending.iter().position(|f| f.operation == operation) {
        Some(state.pending.remove(i))
    } else {
        match &mut state.every {
            Some((n, fault, count)) if fault.operation == operation => {
                *count += 1;
                (*count % *n == 0).then(|| fault.clone())
            }
            _ => None,
        }
    };
    if fault.is_some() {
        *state.injected.entry(operation.to_owned()).or_default() += 1;
    }
    fault
}

async fn handle(
    request: Request<Incoming>,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
) -> Response<Full<Bytes>> {
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('.').next())
        .unwrap_or_default()
        .to_owned();
    let (parts, body) = request.into_parts();
    let body = body.collect().await.expect("request body").to_bytes();
    match take_fault(&state, &operation) {
        Some(fault) if operation == "TransactWriteItems" => return cancelled(&fault, &body),
        Some(fault) => return exception(fault.code),
        None => {}
    }
    let forwarded = Request::from_parts(parts, Full::new(body));
    forward(forwarded, upstream).await
}

/// The answer DynamoDB gives a cancelled transaction: HTTP 400, one reason per item.
fn cancelled(fault: &Fault, body: &[u8]) -> Response<Full<Bytes>> {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let items = request["TransactItems"]
        .as_array()
        .map_or(1, Vec::len)
        .max(fault.position + 1);
    let reasons: Vec<serde_json::Value> = (0..items)
        .map(|i| {
            if i == fault.position {
                serde_json::json!({ "Code": fault.code, "Message": format!("injected {}", fault.code) })
            } else {
                serde_json::json!({ "Code": "None" })
            }
        })
        .collect();
    let codes: Vec<&str> = reasons
        .iter()
        .map(|r| r["Code"].as_str().unwrap_or("None"))
        .collect();
    let answer = serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        "CancellationReasons": reasons,
    });
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header(CONTENT_TYPE, "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(answer.to_string())))
        .expect("a response")
}

/// A plain error answer: HTTP 400 with the exception's `__type`.
fn exception(name: &str) -> Response<Full<Bytes>> {
    let answer = serde_json::json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{name}"),
        "message": format!("injected {name}"),
    });
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header(CONTENT_TYPE, "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(answer.to_string())))
        .expect("a response")
}

async fn forward(request: Request<Full<Bytes>>, upstream: SocketAddr) -> Response<Full<Bytes>> {
    let answer = async {
        let stream = TcpStream::connect(upstream)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (mut parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        parts.headers.remove(TRANSFER_ENCODING);
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        Ok::<_, String>(Response::from_parts(parts, Full::new(body)))
    };
    answer.await.unwrap_or_else(|error| {
        Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Full::new(Bytes::from(error)))
            .expect("a response")
    })
}
