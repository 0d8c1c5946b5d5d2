//! What a [`FakeBedrock`](super::FakeBedrock) answers: scripted replies and faults, and the
//! record of what it was sent.

use std::time::Duration;

use serde_json::Value;

use crate::types::Usage;

/// A scripted answer: text or a tool call, how it is split into stream deltas, the stop
/// reason, usage and timing.
///
/// ```
/// use std::time::Duration;
/// use bedrock_chat_core::testkit::FakeReply;
///
/// let reply = FakeReply::text("Hello there")
///     .with_deltas(["Hel", "lo ", "there"])
///     .with_stop_reason("max_tokens")
///     .with_usage(12, 3)
///     .with_time_to_first_token(Duration::from_millis(5));
/// # let _ = reply;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FakeReply {
    pub(crate) content: FakeContent,
    pub(crate) deltas: Option<Vec<String>>,
    pub(crate) stop_reason: Option<String>,
    pub(crate) usage: Option<Usage>,
    pub(crate) time_to_first_token: Option<Duration>,
    pub(crate) delta_delay: Option<Duration>,
    pub(crate) reasoning: Option<String>,
    pub(crate) redacted_reasoning: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum FakeContent {
    Text(String),
    ToolUse { name: Option<String>, input: Value },
}

impl FakeReply {
    fn of(content: FakeContent) -> Self {
        Self {
            content,
            deltas: None,
            stop_reason: None,
            usage: None,
            time_to_first_token: None,
            delta_delay: None,
            reasoning: None,
            redacted_reasoning: None,
        }
    }

    /// A text answer, streamed a word at a time unless [`with_deltas`](Self::with_deltas)
    /// says otherwise. Stop reason `end_turn`.
    pub fn text(text: impl Into<String>) -> Self {
        Self::of(FakeContent::Text(text.into()))
    }

    /// A call of the tool the request forces (structured output) with this input. Stop
    /// reason `tool_use`.
    pub fn tool_use(input: Value) -> Self {
        Self::of(FakeContent::ToolUse { name: None, input })
    }

    /// A call of the tool `name`, whatever the request asked for.
    pub fn tool_use_named(name: impl Into<String>, input: Value) -> Self {
        Self::of(FakeContent::ToolUse {
            name: Some(name.into()),
            input,
        })
    }

    /// Streams exactly these pieces (their concatenation replaces a text answer's text).
    pub fn with_deltas<I, S>(mut self, deltas: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let deltas: Vec<String> = deltas.into_iter().map(Into::into).collect();
        if let FakeContent::Text(text) = &mut self.content {
            *text = deltas.concat();
        }
        self.deltas = Some(deltas);
        self
    }

    /// Sets the stop reason, by its wire name (`end_turn`, `max_tokens`,
    /// `guardrail_intervened`, ...).
    pub fn with_stop_reason(mut self, reason: impl Into<String>) -> Self {
        self.stop_reason = Some(reason.into());
        self
    }

    /// Reports this usage instead of the estimate (4 characters a token).
    pub fn with_usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage = Some(Usage::new(input_tokens, output_tokens));
        self
    }

    /// Waits this long before the first delta (or before a plain answer).
    pub fn with_time_to_first_token(mut self, delay: Duration) -> Self {
        self.time_to_first_token = Some(delay);
        self
    }

    /// Waits this long between two deltas.
    pub fn with_delta_delay(mut self, delay: Duration) -> Self {
        self.delta_delay = Some(delay);
        self
    }

    /// Reasons `text` before the answer (a Converse `reasoningContent` block, streamed a
    /// word per delta, then its signature), whether or not the request asked for
    /// reasoning. Its tokens count as output tokens.
    ///
    /// ```
    /// use bedrock_chat_core::testkit::FakeReply;
    /// let reply = FakeReply::text("42").with_reasoning("Six times seven.");
    /// # let _ = reply;
    /// ```
    pub fn with_reasoning(mut self, text: impl Into<String>) -> Self {
        self.reasoning = Some(text.into());
        self
    }

    /// Begins the answer with a block of reasoning the provider encrypted (a Converse
    /// `reasoningContent.redactedContent` block of these bytes, streamed as one delta),
    /// as Claude does when its safety systems flag its reasoning. It must be sent back
    /// unchanged on the next turn.
    ///
    /// ```
    /// use bedrock_chat_core::testkit::FakeReply;
    /// let reply = FakeReply::text("42").with_redacted_reasoning(b"opaque".to_vec());
    /// # let _ = reply;
    /// ```
    pub fn with_redacted_reasoning(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.redacted_reasoning = Some(data.into());
        self
    }
}

/// A scripted failure.
///
/// HTTP faults answer any operation with Bedrock's error shape: the status, an
/// `x-amzn-errortype` header and a `{"message": ...}` body. Stream faults let the reply (the
/// echo of the last user message) stream `after_deltas` deltas first; on a plain call they
/// become the closest plain failure (an exception becomes an HTTP error, a stall no answer,
/// a malformed frame a body that is not JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// An HTTP error answer.
    Http {
        /// The status code.
        status: u16,
        /// The error type (`ThrottlingException`, ...).
        error_type: String,
        /// The message.
        message: String,
        /// A `retry-after` header, in seconds.
        retry_after_secs: Option<u64>,
    },
    /// A stream that sends an exception event after some deltas.
    Exception {
        /// Deltas sent first.
        after_deltas: usize,
        /// The exception type as streams name it (`modelStreamErrorException`, ...).
        exception_type: String,
        /// The message.
        message: String,
    },
    /// A stream that goes silent after some deltas (and stays open).
    Stall {
        /// Deltas sent first.
        after_deltas: usize,
    },
    /// A stream that sends a frame whose checksum is wrong after some deltas.
    MalformedFrame {
        /// Deltas sent first.
        after_deltas: usize,
    },
}

impl Fault {
    /// An HTTP error answer with Bedrock's status for `error_type` (400 for types it does
    /// not know).
    pub fn error(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        let error_type = error_type.into();
        Self::Http {
            status: status_of(&error_type),
            error_type,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// `ThrottlingException` (429).
    pub fn throttling() -> Self {
        Self::error(
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        )
    }

    /// `ModelNotReadyException` (429).
    pub fn model_not_ready() -> Self {
        Self::error(
            "ModelNotReadyException",
            "Model is not ready for inference. Wait and try your request again.",
        )
    }

    /// `ServiceQuotaExceededException` (400).
    pub fn service_quota_exceeded() -> Self {
        Self::error(
            "ServiceQuotaExceededException",
            "Your request exceeds the service quota for your account.",
        )
    }

    /// `ServiceUnavailableException` (503).
    pub fn service_unavailable() -> Self {
        Self::error(
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        )
    }

    /// `InternalServerException` (500).
    pub fn internal_server_error() -> Self {
        Self::error(
            "InternalServerException",
            "The server encountered an internal error.",
        )
    }

    /// `ModelTimeoutException` (408).
    pub fn model_timeout() -> Self {
        Self::error(
            "ModelTimeoutException",
            "Model has timed out in processing the request.",
        )
    }

    /// `ValidationException` (400) with this message.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::error("ValidationException", message)
    }

    /// `AccessDeniedException` (403).
    pub fn access_denied() -> Self {
        Self::error(
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        )
    }

    /// `ResourceNotFoundException` (404).
    pub fn resource_not_found() -> Self {
        Self::error("ResourceNotFoundException", "Model not found.")
    }

    /// `ModelErrorException` (424).
    pub fn model_error() -> Self {
        Self::error(
            "ModelErrorException",
            "The model failed to process the request.",
        )
    }

    /// Sets a `retry-after` header on an HTTP fault (other faults are left as they are).
    pub fn with_retry_after_secs(mut self, secs: u64) -> Self {
        if let Self::Http {
            retry_after_secs, ..
        } = &mut self
        {
            *retry_after_secs = Some(secs);
        }
        self
    }

    /// A stream that sends `after_deltas` deltas, then the exception `exception_type`
    /// (`modelStreamErrorException`, `throttlingException`, `internalServerException`,
    /// `serviceUnavailableException`, `validationException`).
    pub fn exception_after(
        after_deltas: usize,
        exception_type: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Exception {
            after_deltas,
            exception_type: exception_type.into(),
            message: message.into(),
        }
    }

    /// A stream that sends `after_deltas` deltas, then nothing.
    pub fn stall_after(after_deltas: usize) -> Self {
        Self::Stall { after_deltas }
    }

    /// A stream that sends `after_deltas` deltas, then a corrupt frame.
    pub fn malformed_frame_after(after_deltas: usize) -> Self {
        Self::MalformedFrame { after_deltas }
    }
}

/// The HTTP status Bedrock answers `error_type` with.
pub(crate) fn status_of(error_type: &str) -> u16 {
    const TABLE: &[(&str, u16)] = &[
        ("ThrottlingException", 429),
        ("ModelNotReadyException", 429),
        ("ServiceQuotaExceededException", 400),
        ("ServiceUnavailableException", 503),
        ("InternalServerException", 500),
        ("ModelTimeoutException", 408),
        ("ValidationException", 400),
        ("AccessDeniedException", 403),
        ("ResourceNotFoundException", 404),
        ("ModelErrorException", 424),
        ("ModelStreamErrorException", 424),
    ];
    TABLE
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(error_type))
        .map_or(400, |(_, status)| *status)
}

/// What the next call answers with.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scripted {
    Reply(FakeReply),
    Fault(Fault),
}

/// A Bedrock Runtime operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `POST /model/{modelId}/converse`.
    Converse,
    /// `POST /model/{modelId}/converse-stream`.
    ConverseStream,
    /// `POST /model/{modelId}/invoke`.
    InvokeModel,
    /// `POST /model/{modelId}/invoke-with-response-stream`.
    InvokeModelWithResponseStream,
    /// `POST /model/{modelId}/count-tokens` (a Converse input): the input tokens, 4
    /// characters a token as the fake's usage counts them. It takes no scripted reply.
    CountTokens,
}

impl Operation {
    /// Whether the answer is an event stream.
    pub fn is_stream(self) -> bool {
        matches!(
            self,
            Self::ConverseStream | Self::InvokeModelWithResponseStream
        )
    }
}

/// One request the fake received, as sent.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The operation.
    pub operation: Operation,
    /// The model id, percent-decoded.
    pub model_id: String,
    /// The JSON body (`Value::Null` when it was not JSON).
    pub body: Value,
    /// The request headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Delays applied to every streamed reply that does not set its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// Before the first delta.
    pub time_to_first_token: Duration,
    /// Between two deltas.
    pub delta_delay: Duration,
}
