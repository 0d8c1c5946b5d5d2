//! Rate-limit headers: `X-RateLimit-*` (seed 003), the IETF `RateLimit` /
//! `RateLimit-Policy` fields and `Retry-After`, from a limiter's [`Decision`].

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bedrock_chat_core::Decision;

/// The policy name the IETF fields carry.
pub const POLICY_NAME: &str = "requests";

/// Puts `decision`'s headers on an answer, replacing any already there.
pub fn insert_headers(headers: &mut HeaderMap, decision: &Decision) {
    for (name, value) in decision.headers(POLICY_NAME) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// Marks an answer with the decision its request was given, for the auth layer to render.
pub fn with_decision(
    mut response: axum::response::Response,
    decision: Option<Decision>,
) -> axum::response::Response {
    if let Some(decision) = decision {
        response.extensions_mut().insert(decision);
    }
    response
}
