//! The HTTP API on AWS Lambda: the server's own [`router`](crate::http::router) behind
//! `lambda_http`, which turns API Gateway (REST v1, HTTP API v2), Function URL and ALB
//! events into requests and the router's responses back into what they expect.
//!
//! The Lambda host adds two things before the router:
//! - the client's IP: there is no socket, and a header such as `X-Forwarded-For` can be
//!   written by the caller, so [`handler`] puts the address API Gateway itself saw (the
//!   request context's `identity.sourceIp` for v1, `http.sourceIp` for v2 and Function
//!   URLs) into the request as [`ClientIp`], and the per-IP limit counts against it
//!   whatever headers the caller sends;
//! - for REST APIs (v1), the path as the event gives it, relative to the stage:
//!   `lambda_http` would otherwise prefix the stage name (`/prod/chat`), which no route
//!   matches. HTTP APIs (v2) on the `$default` stage and Function URLs need no change.

use std::net::IpAddr;

use axum::http::Uri;
use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use tower::util::MapRequest;

use crate::http::ClientIp;

/// The router as a Lambda handler: what `lambda_http::run` (buffered answers, for API
/// Gateway) or `lambda_http::run_with_streaming_response` (Lambda response streaming)
/// runs, and what the tests feed events through.
pub type Handler = MapRequest<Router, fn(lambda_http::Request) -> lambda_http::Request>;

/// Wraps `router` so that each request carries the [`ClientIp`] its event's request
/// context names, and a REST API request its path within the stage.
pub fn handler(router: Router) -> Handler {
    MapRequest::new(router, prepare as fn(_) -> _)
}

/// Adds the event's source IP to `request` as [`ClientIp`] (when it has one) and takes
/// the stage back out of a REST API request's path.
fn prepare(mut request: lambda_http::Request) -> lambda_http::Request {
    if let Some(ip) = client_ip(&request) {
        request.extensions_mut().insert(ClientIp(ip));
    }
    if let Some(RequestContext::ApiGatewayV1(_)) = request.request_context_ref() {
        let path = request.raw_http_path().to_owned();
        if let Some(uri) = with_path(request.uri(), &path) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// `uri` with its path replaced by `path` (the query kept); `None` when `path` is empty,
/// already the path, or not a valid one.
fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    if path.is_empty() || path == uri.path() {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// The client's IP as the front door saw it: the request context's source IP for API
/// Gateway REST (v1) and HTTP APIs (v2, also Function URLs); for an ALB, the last
/// `X-Forwarded-For` hop, which the load balancer appends itself. `None` for an event
/// without one (the router then limits by the caller's identity instead).
pub fn client_ip<B>(request: &lambda_http::http::Request<B>) -> Option<IpAddr> {
    let source = match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(context) => context.identity.source_ip.as_deref(),
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.as_deref(),
        RequestContext::Alb(_) => request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back(),
        _ => None,
    }?;
    source.trim().parse().ok()
}
