//! Every error answer of the API, built in one place: a status, a JSON body
//! `{"error", "message", ...}`, and the headers the status needs.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bedrock_chat_core::{
    ChatError, Decision, InvalidInput, ModelError, RateLimitError, StoreError,
};
use serde::Serialize;

/// How long a client is told to wait after a failure that says nothing more precise.
const DEFAULT_RETRY_AFTER_SECS: u64 = 5;

/// An error answer (boxed: handlers return it in every `Result`, and it is large).
#[derive(Debug)]
pub struct ApiError(Box<Answer>);

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<u64>,
    decision: Option<Decision>,
    www_authenticate: Option<String>,
}

/// The JSON of an error answer.
#[derive(Debug, Serialize, Clone, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in a few words (`"Invalid request"`, `"Rate limit exceeded"`).
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before retrying, when retrying helps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An answer with this status and words.
    pub fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Self {
        Self(Box::new(Answer {
            status,
            body: ErrorBody {
                error: error.to_owned(),
                message: message.into(),
                field: None,
                retry_after: None,
            },
            retry_after: None,
            decision: None,
            www_authenticate: None,
        }))
    }

    /// 400 naming the field at fault.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, "Invalid request", message);
        error.0.body.field = Some(field.into());
        error
    }

    /// A library's refusal of input: 400, 413 (too large or too many) or 415 (a media
    /// type not taken) by its kind, naming the field.
    pub fn invalid_input(e: &InvalidInput) -> Self {
        let (status, title) = match e.http_status() {
            413 => (StatusCode::PAYLOAD_TOO_LARGE, "Payload too large"),
            415 => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"),
            _ => (StatusCode::BAD_REQUEST, "Invalid request"),
        };
        let mut error = Self::new(status, title, e.to_string());
        error.0.body.field = Some(e.field.clone());
        error
    }

    /// Names the request field at fault.
    pub fn set_field(&mut self, field: impl Into<String>) {
        self.0.body.field = Some(field.into());
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("{what} not found"),
        )
    }

    /// 401 with a `WWW-Authenticate` challenge.
    pub fn unauthorized(message: impl Into<String>, challenge: String) -> Self {
        let mut error = Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message);
        error.0.www_authenticate = Some(challenge);
        error
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Payload too large",
            format!("the request body is over the limit of {limit} bytes"),
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The JSON body.
    pub fn body(&self) -> &ErrorBody {
        &self.0.body
    }

    /// Renames the field at fault from `from` to `to` (a handler whose body names a
    /// field differently from the library).
    pub fn rename_field(&mut self, from: &str, to: &str) {
        if self.0.body.field.as_deref() == Some(from) {
            self.0.body.field = Some(to.to_owned());
            self.0.body.message = self.0.body.message.replace(from, to);
        }
    }

    fn retry_after(mut self, secs: u64) -> Self {
        self.0.retry_after = Some(secs);
        self.0.body.retry_after = Some(secs);
        self
    }
}

impl From<ChatError> for ApiError {
    fn from(error: ChatError) -> Self {
        match error {
            ChatError::InvalidInput(e) => Self::invalid_input(&e),
            ChatError::RateLimited(decision) => limited("Rate limit exceeded", decision),
            ChatError::BudgetExhausted(decision) => {
                let mut error = limited("Token budget exhausted", decision);
                error.0.body.message = format!(
                    "The token budget of {} tokens per {} seconds is spent.",
                    error.0.decision.as_ref().map_or(0, |d| d.limit),
                    error.0.decision.as_ref().map_or(0, |d| d.window_secs()),
                );
                error
            }
            ChatError::Model(e) => model_error(e),
            ChatError::Store(e) => store_error(e),
            ChatError::RateLimiter(e) => limiter_error(e),
            // `ChatError` is non-exhaustive: a kind added later is a server error until
            // it gets its own answer here.
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                other.to_string(),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        store_error(error)
    }
}

fn limited(title: &str, decision: Decision) -> ApiError {
    let secs = decision
        .retry_after_secs()
        .unwrap_or_else(|| decision.reset_after_secs())
        .max(1);
    let mut error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        title,
        decision.refusal_message(),
    )
    .retry_after(secs);
    error.0.decision = Some(decision);
    error
}

fn model_error(error: ModelError) -> ApiError {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
    match status {
        StatusCode::SERVICE_UNAVAILABLE => {
            let secs = error
                .retry_after()
                .map_or(DEFAULT_RETRY_AFTER_SECS, |d| d.as_secs().max(1));
            ApiError::new(status, "Model unavailable", error.to_string()).retry_after(secs)
        }
        StatusCode::GATEWAY_TIMEOUT => {
            ApiError::new(status, "Model timeout", error.to_string()).retry_after(1)
        }
        StatusCode::BAD_REQUEST => ApiError::invalid("message", error.to_string()),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, "Model error", error.to_string()),
    }
}

fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound { resource } => {
            ApiError::not_found(&capitalised(&resource.to_string()))
        }
        StoreError::InvalidInput(e) => ApiError::invalid_input(&e),
        StoreError::Conflict { message } => {
            ApiError::new(StatusCode::CONFLICT, "Conflict", message)
        }
        e if e.http_status() == 503 => {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "history store unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                "the history store is unavailable; nothing was changed",
            )
            .retry_after(DEFAULT_RETRY_AFTER_SECS)
        }
        e => {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "history store failed");
            ApiError::new(
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "Internal error",
                "the history store failed; nothing was changed",
            )
        }
    }
}

fn limiter_error(error: RateLimitError) -> ApiError {
    match error {
        RateLimitError::InvalidInput(e) => ApiError::invalid(e.field.clone(), e.to_string()),
        e if e.http_status() == 503 => {
            tracing::error!(error = %e, "rate limiter unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                "the rate limiter is unavailable",
            )
            .retry_after(DEFAULT_RETRY_AFTER_SECS)
        }
        e => ApiError::new(
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "Rate limiter error",
            e.to_string(),
        ),
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0.status, axum::Json(&self.0.body)).into_response();
        let headers = response.headers_mut();
        if let Some(decision) = &self.0.decision {
            super::limits::insert_headers(headers, decision);
        }
        if let Some(secs) = self.0.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.0.www_authenticate {
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}
