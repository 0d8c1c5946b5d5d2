//! Bedrock's wire shapes: JSON answers, error answers, and `application/vnd.amazon.eventstream`
//! frames (written by `aws-smithy-eventstream`, so preludes and CRCs are right by
//! construction).

use std::convert::Infallible;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue as HttpHeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// A response body: whole, or streamed from a channel.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// The content type of event streams.
pub(crate) const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// A response with `status`, `headers` (invalid values are left out: they come from
/// scripts, and a test server must not panic on them) and `body`.
pub(crate) fn response(status: u16, headers: &[(&str, String)], body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HttpHeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A JSON answer.
pub(crate) fn json_response(
    status: u16,
    value: &Value,
    headers: &[(&str, String)],
) -> Response<Body> {
    let mut all = vec![(CONTENT_TYPE.as_str(), "application/json".to_owned())];
    all.extend_from_slice(headers);
    response(status, &all, full(value.to_string()))
}

/// Bedrock's error answer: the status, the error type in `x-amzn-errortype` (with the
/// namespace suffix the real service adds, which clients strip), and `{"message": ...}`.
pub(crate) fn error_response(
    status: u16,
    error_type: &str,
    message: &str,
    retry_after_secs: Option<u64>,
) -> Response<Body> {
    let mut headers = vec![(
        "x-amzn-errortype",
        format!("{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
    )];
    if let Some(secs) = retry_after_secs {
        headers.push(("retry-after", secs.to_string()));
    }
    json_response(status, &json!({ "message": message }), &headers)
}

/// A `ValidationException` (400).
pub(crate) fn validation_error(message: &str) -> Response<Body> {
    error_response(400, "ValidationException", message, None)
}

/// A 200 answer whose body is whatever the channel sends, ending when it closes.
pub(crate) fn stream_response(frames: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(frames, |mut frames| async move {
        frames
            .recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), frames))
    });
    response(
        200,
        &[(CONTENT_TYPE.as_str(), EVENT_STREAM.to_owned())],
        StreamBody::new(stream).boxed(),
    )
}

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn encode(message: &Message) -> Option<Bytes> {
    let mut buffer = Vec::new();
    match write_message_to(message, &mut buffer) {
        Ok(()) => Some(Bytes::from(buffer)),
        Err(error) => {
            tracing::error!(%error, "fake bedrock could not encode an event");
            None
        }
    }
}

/// An event frame: `:message-type: event`, `:event-type`, JSON payload.
pub(crate) fn event_frame(event_type: &str, payload: &Value) -> Option<Bytes> {
    let message = Message::new(payload.to_string())
        .add_header(string_header(":event-type", event_type))
        .add_header(string_header(":content-type", "application/json"))
        .add_header(string_header(":message-type", "event"));
    encode(&message)
}

/// An exception frame: `:message-type: exception`, `:exception-type`, `{"message": ...}`.
pub(crate) fn exception_frame(exception_type: &str, message: &str) -> Option<Bytes> {
    let frame = Message::new(json!({ "message": message }).to_string())
        .add_header(string_header(":exception-type", exception_type))
        .add_header(string_header(":content-type", "application/json"))
        .add_header(string_header(":message-type", "exception"));
    encode(&frame)
}

/// A well-formed event frame whose message checksum (its last four bytes) is wrong.
pub(crate) fn malformed_frame() -> Option<Bytes> {
    let mut bytes = event_frame(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0, "delta": {"text": "?"}}),
    )?
    .to_vec();
    if let Some(last) = bytes.last_mut() {
        *last ^= 0xFF;
    }
    Some(Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;

    #[test]
    fn event_frames_decode_with_their_headers() {
        let frame = event_frame("messageStop", &json!({"stopReason": "end_turn"})).unwrap();
        let message = read_message_from(frame).unwrap();
        let names: Vec<&str> = message
            .headers()
            .iter()
            .map(|h| h.name().as_str())
            .collect();
        assert_eq!(names, [":event-type", ":content-type", ":message-type"]);
        assert_eq!(&message.payload()[..], br#"{"stopReason":"end_turn"}"#);
    }

    #[test]
    fn a_malformed_frame_fails_its_checksum() {
        assert!(read_message_from(malformed_frame().unwrap()).is_err());
    }
}
