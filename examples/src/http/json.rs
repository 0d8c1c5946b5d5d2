//! Request bodies and query strings that answer bad input with a JSON error naming the
//! field, instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body, deserialized; a bad one is a 400 naming the field (413 when over the
/// body limit, 415 when not declared as JSON).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json") || v.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(_)
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
                {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Payload too large",
                        "the request body is over the server's limit",
                    )
                }
                other => ApiError::invalid("body", other.body_text()),
            })?;
        decode(&bytes).map(ApiJson)
    }
}

/// Deserializes `bytes`, naming the field at fault when it fails.
///
/// # Errors
/// A 400 [`ApiError`] naming the field (or `body` when the JSON itself is broken).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => {
            deserializer
                .end()
                .map_err(|e| ApiError::invalid("body", format!("invalid JSON: {e}")))?;
            Ok(value)
        }
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let message = inner.to_string();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::invalid(
                    "body",
                    format!("the body is not valid JSON: {message}"),
                ));
            }
            let field = missing_field(&message)
                .map(|name| {
                    if path == "." {
                        name.to_owned()
                    } else {
                        format!("{path}.{name}")
                    }
                })
                .unwrap_or_else(|| {
                    if path == "." || path == "?" {
                        "body".to_owned()
                    } else {
                        path.clone()
                    }
                });
            Err(ApiError::invalid(
                field.clone(),
                format!("invalid {field}: {message}"),
            ))
        }
    }
}

/// The field named by serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// A query string, deserialized; a bad one is a 400 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let path = error.path().to_string();
                let message = error.into_inner().to_string();
                let field = missing_field(&message).map(str::to_owned).unwrap_or(path);
                ApiError::invalid(field.clone(), format!("invalid {field}: {message}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        message: String,
        chat_id: Option<uuid::Uuid>,
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = decode::<Body>(br#"{"chat_id": null}"#).unwrap_err();
        assert_eq!(err.body().field.as_deref(), Some("message"));
    }

    #[test]
    fn a_wrong_type_is_named() {
        let err = decode::<Body>(br#"{"message": 5}"#).unwrap_err();
        assert_eq!(err.body().field.as_deref(), Some("message"));
        let err = decode::<Body>(br#"{"message": "hi", "chat_id": "nope"}"#).unwrap_err();
        assert_eq!(err.body().field.as_deref(), Some("chat_id"));
    }

    #[test]
    fn broken_json_is_the_body() {
        let err = decode::<Body>(b"{not json").unwrap_err();
        assert_eq!(err.body().field.as_deref(), Some("body"));
        let err = decode::<Body>(br#"{"message":"a"} trailing"#).unwrap_err();
        assert_eq!(err.body().field.as_deref(), Some("body"));
    }
}
