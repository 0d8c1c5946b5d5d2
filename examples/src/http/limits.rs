//! Rate-limit headers: `X-RateLimit-*` (seed 003), the IETF `RateLimit` /
//! `RateLimit-Policy` fields and `Retry-After`, from a limiter's [`Decision`].

use std::fmt::Write as _;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use bedrock_chat_core::Decision;

/// The policy name the IETF fields carry.
pub const POLICY_NAME: &str = "requests";

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_WINDOW: HeaderName = HeaderName::from_static("x-ratelimit-window");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Puts `decision`'s headers on an answer, replacing any already there: the same fields
/// and values as [`Decision::headers`] gives for [`POLICY_NAME`], written straight into
/// header values (this runs on every answer of the API).
pub fn insert_headers(headers: &mut HeaderMap, decision: &Decision) {
    let window = decision.window_secs();
    headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(decision.limit));
    headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(X_RATELIMIT_WINDOW, HeaderValue::from(window));
    // POLICY_NAME needs no structured-field escaping.
    let mut field = String::with_capacity(48);
    let _ = write!(field, "\"{POLICY_NAME}\";q={};w={window}", decision.limit);
    if let Ok(value) = HeaderValue::from_str(&field) {
        headers.insert(RATELIMIT_POLICY, value);
    }
    field.clear();
    let _ = write!(
        field,
        "\"{POLICY_NAME}\";r={};t={}",
        decision.remaining,
        decision.reset_after_secs()
    );
    if let Ok(value) = HeaderValue::from_str(&field) {
        headers.insert(RATELIMIT, value);
    }
    if let Some(secs) = decision.retry_after_secs() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bedrock_chat_core::limiter::Window;
    use bedrock_chat_core::Quota;

    use super::*;

    #[test]
    fn headers_are_those_the_decision_names() {
        let quota = Quota::per_minute(10).unwrap();
        let window = Window {
            index: 1,
            millis_to_reset: 12_300,
        };
        let allowed = quota.decision(true, 3, window);
        let refused = quota.decision(false, 10, window);
        assert_eq!(refused.retry_after, Some(Duration::from_millis(12_300)));
        for decision in [allowed, refused] {
            let mut headers = HeaderMap::new();
            insert_headers(&mut headers, &decision);
            let expected = decision.headers(POLICY_NAME);
            assert_eq!(headers.len(), expected.len());
            for (name, value) in expected {
                assert_eq!(headers[name], value.as_str(), "{name}");
            }
        }
    }
}
