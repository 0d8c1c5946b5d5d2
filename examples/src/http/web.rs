//! The web chat page: the HTML, CSS and JavaScript under `examples/src/web/` (and the
//! vendored Markdown renderer and sanitiser under `web/vendor/`, see `scripts/vendor-web`),
//! embedded in the binary and served at `GET /` and `GET /assets/{path}`.
//!
//! Every file is served with an `ETag` and `Cache-Control: no-cache` (browsers keep it and
//! revalidate, a match is a body-less 304), and with a Content-Security-Policy that allows
//! scripts, styles and connections from this origin only: no inline script, no `eval`,
//! no inline style attributes, no plugin, no framing. Images may also be `blob:` URLs: the
//! page shows attachments it is about to send, and those it fetched with an access token,
//! as object URLs of their bytes. Markdown from a model or a user is rendered by the page
//! with raw HTML escaped and then sanitised; the policy is the second wall.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The policy on every page file.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        (
            $path,
            include_bytes!(concat!("../web/", $path)).as_slice(),
            $content_type,
        )
    };
}

/// The page's files by path under `/assets/` (the page itself is `index.html`).
static ASSETS: LazyLock<HashMap<&'static str, Asset>> = LazyLock::new(|| {
    const JS: &str = "text/javascript; charset=utf-8";
    [
        asset!("index.html", "text/html; charset=utf-8"),
        asset!("app.css", "text/css; charset=utf-8"),
        asset!("app.js", JS),
        asset!("attachments.js", JS),
        asset!("citations.js", JS),
        asset!("markdown.js", JS),
        asset!("reasoning.js", JS),
        asset!("sse.js", JS),
        asset!("tools.js", JS),
        asset!("icon.svg", "image/svg+xml"),
        asset!("vendor/marked.esm.js", JS),
        asset!("vendor/purify.es.mjs", JS),
    ]
    .into_iter()
    .map(|(path, bytes, content_type)| {
        let asset = Asset {
            bytes,
            content_type,
            etag: etag_of(bytes),
        };
        (path, asset)
    })
    .collect()
});

/// A strong validator from the file's bytes.
fn etag_of(bytes: &[u8]) -> HeaderValue {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    let etag = format!("\"{:016x}-{:x}\"", hasher.finish(), bytes.len());
    HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// `GET /`: the chat page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers).unwrap_or_else(IntoResponse::into_response)
}

/// `GET /assets/{path}`: the page's scripts, styles and icon.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers).unwrap_or_else(IntoResponse::into_response)
}

fn serve(path: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let asset = ASSETS
        .get(path)
        .ok_or_else(|| ApiError::not_found("page file"))?;
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| matches_etag(tags, &asset.etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.bytes,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, asset.etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, as RFC 9110 asks for
/// `If-None-Match`), or is `*`.
fn matches_etag(tags: &str, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or_default();
    tags.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_file_is_embedded_and_has_a_distinct_etag() {
        let mut etags: Vec<_> = ASSETS.values().map(|a| a.etag.clone()).collect();
        assert_eq!(etags.len(), 12);
        assert!(ASSETS.values().all(|a| !a.bytes.is_empty()));
        etags.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        etags.dedup();
        assert_eq!(etags.len(), 12, "two files share an ETag");
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let etag = HeaderValue::from_static("\"abc-1\"");
        assert!(matches_etag("\"abc-1\"", &etag));
        assert!(matches_etag("W/\"abc-1\"", &etag));
        assert!(matches_etag("\"x\", \"abc-1\"", &etag));
        assert!(matches_etag("*", &etag));
        assert!(!matches_etag("\"abc-2\"", &etag));
        assert!(!matches_etag("abc-1", &etag));
    }
}
