//! Who is calling: the auth layer turns a request into a [`Caller`] (user id, rate-limit
//! key, budget key, request id), answers 401 when credentials are missing or wrong, and
//! puts the caller's rate-limit headers on every answer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bedrock_chat_core::{Decision, SendRequest, UserId};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::jwt::JwtVerifier;
use super::AppState;

/// The caller of a request, as the auth layer established it.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Whose conversations the request sees.
    pub user: UserId,
    /// The key the request limit counts against: the user, or the client IP when
    /// anonymous.
    pub rate_key: String,
    /// The key the token budget counts against: the user (for anonymous callers, their
    /// browser identity).
    pub budget_key: String,
    /// The request's id (`x-request-id`).
    pub request_id: Option<String>,
}

impl Caller {
    /// A send of `message` by this caller: their user, rate-limit key, budget key and
    /// request id, so every handler builds it the same way.
    pub fn send_request(&self, message: String) -> SendRequest {
        let send = SendRequest::new(self.user.clone(), message)
            .with_rate_key(self.rate_key.clone())
            .with_budget_key(self.budget_key.clone());
        match &self.request_id {
            Some(id) => send.with_request_id(id.clone()),
            None => send,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("no caller was identified", challenge(None)))
    }
}

/// The client's IP, when the host knows it better than the socket does (the Lambda entry
/// point reads it from the API Gateway request context). Put it in the request's
/// extensions before the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The name of the anonymous identity cookie.
pub const IDENTITY_COOKIE: &str = "bedrock_chat_id";

/// How callers are identified.
pub enum Authenticator {
    /// No credentials: a random identity cookie per browser; limits per client IP.
    Anonymous {
        /// Whether the cookie is marked `Secure`.
        secure_cookies: bool,
        /// Whether `X-Forwarded-For` names the client.
        trust_forwarded_for: bool,
    },
    /// Static API keys.
    ApiKeys(ApiKeys),
    /// JWT bearer tokens.
    Jwt(Arc<JwtVerifier>),
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anonymous { .. } => f.write_str("Anonymous"),
            Self::ApiKeys(keys) => write!(f, "ApiKeys({} keys)", keys.entries.len()),
            Self::Jwt(_) => f.write_str("Jwt"),
        }
    }
}

/// Static API keys: lines `USER_ID KEY`.
#[derive(Clone)]
pub struct ApiKeys {
    entries: Vec<(UserId, Vec<u8>)>,
}

/// A bad API key file.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeysError {
    /// It cannot be read.
    #[error("cannot read the API key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `USER_ID KEY`.
    #[error("line {line} of the API key file: {reason}")]
    Line {
        /// 1-based.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl ApiKeys {
    /// Reads a key file: one `USER_ID KEY` per line; blank lines and `#` comments skipped.
    ///
    /// # Errors
    /// An unreadable file, a malformed line, a bad user id, a key under 16 characters or
    /// used twice.
    pub fn load(path: &Path) -> Result<Self, ApiKeysError> {
        let text = std::fs::read_to_string(path).map_err(|source| ApiKeysError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses the contents of a key file.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(text: &str) -> Result<Self, ApiKeysError> {
        let mut entries = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| ApiKeysError::Line {
                line: line_no,
                reason: reason.to_owned(),
            };
            let mut parts = line.split_whitespace();
            let (Some(user), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("expected `USER_ID KEY`"));
            };
            let user = UserId::new(user).map_err(|e| bad(&e.to_string()))?;
            if key.len() < 16 {
                return Err(bad("the key is shorter than 16 characters"));
            }
            if seen.insert(key.to_owned(), line_no).is_some() {
                return Err(bad("the key is used twice"));
            }
            entries.push((user, key.as_bytes().to_vec()));
        }
        Ok(Self { entries })
    }

    /// The user whose key this is. Every key is compared, in constant time each, so the
    /// time taken says nothing about which key came close.
    pub fn user_for(&self, presented: &str) -> Option<UserId> {
        let presented = presented.as_bytes();
        let mut found = None;
        for (user, key) in &self.entries {
            if bool::from(key.as_slice().ct_eq(presented)) {
                found = Some(user.clone());
            }
        }
        found
    }
}

/// The `WWW-Authenticate` challenge, with an OAuth error code for a bad token.
pub(crate) fn challenge(error: Option<&str>) -> String {
    match error {
        Some(code) => format!("Bearer realm=\"bedrock-chat\", error=\"{code}\""),
        None => "Bearer realm=\"bedrock-chat\"".to_owned(),
    }
}

/// The bearer token or API key of a request.
fn presented_credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The client's IP: what the host put in [`ClientIp`], else, when trusted, the last
/// `X-Forwarded-For` hop (the peer the proxy in front of us saw: earlier hops are whatever
/// the client wrote), else the socket's peer.
fn client_ip(request: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    if let Some(ClientIp(ip)) = request.extensions().get::<ClientIp>() {
        return Some(*ip);
    }
    if trust_forwarded_for {
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// The anonymous identity in the request's cookie, if it is one we would have issued.
fn identity_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == IDENTITY_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The auth layer: identifies the caller (or answers 401), runs the request, then adds
/// the caller's rate-limit headers and, for a new anonymous caller, the identity cookie.
pub(crate) async fn identify(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut new_cookie = None;
    let caller = match state.auth.as_ref() {
        Authenticator::Anonymous {
            secure_cookies,
            trust_forwarded_for,
        } => {
            let id = match identity_cookie(request.headers()) {
                Some(id) => id,
                None => {
                    let id = uuid::Uuid::new_v4().simple().to_string();
                    new_cookie = Some(cookie_header(&id, *secure_cookies));
                    id
                }
            };
            let user = match UserId::new(format!("anon-{id}")) {
                Ok(user) => user,
                Err(e) => return ApiError::invalid("cookie", e.to_string()).into_response(),
            };
            let rate_key = match client_ip(&request, *trust_forwarded_for) {
                Some(ip) => format!("ip:{ip}"),
                None => format!("user:{user}"),
            };
            Caller {
                budget_key: format!("user:{user}"),
                user,
                rate_key,
                request_id,
            }
        }
        Authenticator::ApiKeys(keys) => {
            let Some(presented) = presented_credential(request.headers()) else {
                return ApiError::unauthorized("an API key is required", challenge(None))
                    .into_response();
            };
            let Some(user) = keys.user_for(presented) else {
                return ApiError::unauthorized(
                    "the API key is not valid",
                    challenge(Some("invalid_token")),
                )
                .into_response();
            };
            authenticated(user, request_id)
        }
        Authenticator::Jwt(verifier) => {
            let Some(token) = presented_credential(request.headers()) else {
                return ApiError::unauthorized("a bearer token is required", challenge(None))
                    .into_response();
            };
            match verifier.verify(token).await {
                Ok(user) => authenticated(user, request_id),
                Err(error) => {
                    tracing::info!(error = %error, "rejected a bearer token");
                    return ApiError::unauthorized(
                        format!("the bearer token is not valid: {error}"),
                        challenge(Some("invalid_token")),
                    )
                    .into_response();
                }
            }
        }
    };
    let rate_key = caller.rate_key.clone();
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;

    let decision = match response.extensions_mut().remove::<Decision>() {
        Some(decision) => Some(decision),
        // An answer that consulted no limit shows where the caller stands, spending
        // nothing.
        None => state.peek_limit(&rate_key).await,
    };
    if let Some(decision) = decision {
        super::limits::insert_headers(response.headers_mut(), &decision);
    }
    if let Some(cookie) = new_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

fn authenticated(user: UserId, request_id: Option<String>) -> Caller {
    Caller {
        rate_key: format!("user:{user}"),
        budget_key: format!("user:{user}"),
        user,
        request_id,
    }
}

fn cookie_header(id: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    // A year: the identity is the browser's history; losing it loses the conversations.
    let value =
        format!("{IDENTITY_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000{secure}");
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_map_to_their_users() {
        let keys =
            ApiKeys::parse("# users\nalice 0123456789abcdef-alice\n\nbob   0123456789abcdef-bob\n")
                .unwrap();
        assert_eq!(
            keys.user_for("0123456789abcdef-bob").unwrap().as_str(),
            "bob"
        );
        assert!(keys.user_for("0123456789abcdef-bo").is_none());
        assert!(keys.user_for("").is_none());
    }

    #[test]
    fn bad_key_files_name_the_line() {
        for (text, line) in [
            ("alice short", 1),
            ("\nalice", 2),
            ("a 0123456789abcdef\nb 0123456789abcdef", 2),
            ("a 0123456789abcdef extra", 1),
        ] {
            match ApiKeys::parse(text) {
                Err(ApiKeysError::Line { line: got, .. }) => assert_eq!(got, line, "{text}"),
                other => panic!("{text}: {:?}", other.map(|_| ())),
            }
        }
    }

    #[test]
    fn only_our_own_cookie_values_are_identities() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; bedrock_chat_id=0123456789abcdef0123456789abcdef"),
        );
        assert_eq!(
            identity_cookie(&headers).as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("bedrock_chat_id=../../etc"),
        );
        assert_eq!(identity_cookie(&headers), None);
    }

    fn request_from(peer: &str, forwarded: &[&str]) -> Request {
        let mut request = Request::new(axum::body::Body::empty());
        for value in forwarded {
            request
                .headers_mut()
                .append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        request
            .extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        request
    }

    #[test]
    fn a_trusted_forwarded_for_gives_the_hop_the_proxy_added_not_what_the_client_wrote() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // The client wrote 192.0.2.1; the proxy appended the peer it saw.
        let appended = request_from("10.0.0.2:5000", &["192.0.2.1, 203.0.113.50"]);
        assert_eq!(client_ip(&appended, true), ip("203.0.113.50"));
        let two_headers = request_from("10.0.0.2:5000", &["192.0.2.1", "203.0.113.50"]);
        assert_eq!(client_ip(&two_headers, true), ip("203.0.113.50"));
        // Untrusted: the socket's peer, whatever the header says.
        assert_eq!(client_ip(&appended, false), ip("10.0.0.2"));
        // A last hop that is not an address: the socket's peer.
        let garbage = request_from("10.0.0.2:5000", &["192.0.2.1, not-an-ip"]);
        assert_eq!(client_ip(&garbage, true), ip("10.0.0.2"));
        // What the host put in ClientIp wins.
        let mut hosted = request_from("10.0.0.2:5000", &["192.0.2.1"]);
        hosted
            .extensions_mut()
            .insert(ClientIp("198.51.100.7".parse().unwrap()));
        assert_eq!(client_ip(&hosted, true), ip("198.51.100.7"));
    }
}
