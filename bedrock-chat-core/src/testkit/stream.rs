//! Streamed answers: a task that sends the frames with the scripted delays, and breaks the
//! stream off as a fault says.

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use tokio::sync::mpsc;

use super::script::Fault;
use super::wire::{exception_frame, malformed_frame, stream_response, Body};

/// The frames of one streamed answer.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    /// Sent at once (`messageStart`, `contentBlockStart`).
    pub(crate) start: Vec<Bytes>,
    /// One per delta, after the time to first token and with the delay between them.
    pub(crate) deltas: Vec<Bytes>,
    /// Sent after the last delta (`contentBlockStop`, `messageStop`, `metadata`).
    pub(crate) end: Vec<Bytes>,
}

/// Starts sending `frames` and returns the response that carries them.
pub(crate) fn spawn_stream(
    frames: Frames,
    time_to_first_token: Duration,
    delta_delay: Duration,
    fault: Option<Fault>,
) -> Response<Body> {
    // A small buffer: a client that stops reading holds the sender back, as TCP would.
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(send_frames(
        frames,
        time_to_first_token,
        delta_delay,
        fault,
        tx,
    ));
    stream_response(rx)
}

async fn send_frames(
    frames: Frames,
    time_to_first_token: Duration,
    delta_delay: Duration,
    fault: Option<Fault>,
    tx: mpsc::Sender<Bytes>,
) {
    for frame in frames.start {
        if tx.send(frame).await.is_err() {
            return;
        }
    }
    sleep(time_to_first_token).await;
    let break_at = fault.as_ref().map(after_deltas);
    for (i, frame) in frames.deltas.into_iter().enumerate() {
        if break_at == Some(i) {
            break;
        }
        if i > 0 {
            sleep(delta_delay).await;
        }
        if tx.send(frame).await.is_err() {
            return;
        }
    }
    if let Some(fault) = fault {
        break_off(fault, &tx).await;
        return;
    }
    for frame in frames.end {
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}

async fn sleep(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

fn after_deltas(fault: &Fault) -> usize {
    match fault {
        Fault::Exception { after_deltas, .. }
        | Fault::Stall { after_deltas }
        | Fault::MalformedFrame { after_deltas } => *after_deltas,
        Fault::Http { .. } => 0,
    }
}

/// Ends the stream as `fault` says.
async fn break_off(fault: Fault, tx: &mpsc::Sender<Bytes>) {
    let frame = match fault {
        Fault::Exception {
            exception_type,
            message,
            ..
        } => exception_frame(&exception_type, &message),
        Fault::MalformedFrame { .. } => malformed_frame(),
        Fault::Stall { .. } => {
            // Silent but open, until the client goes away or the server stops.
            tx.closed().await;
            return;
        }
        // HTTP faults are answered before a stream starts; here one can only be an
        // exception named like the error type (`ThrottlingException` → `throttlingException`).
        Fault::Http {
            error_type,
            message,
            ..
        } => exception_frame(&lower_camel(&error_type), &message),
    };
    if let Some(frame) = frame {
        let _ = tx.send(frame).await;
    }
}

/// `ThrottlingException` as streams name it: `throttlingException`.
pub(crate) fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// `throttlingException` as HTTP errors name it: `ThrottlingException`.
pub(crate) fn upper_camel(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}
