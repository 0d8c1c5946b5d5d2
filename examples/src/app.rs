//! From parsed settings to what the HTTP hosts serve: the router's [`AppState`] (chat
//! service, authenticator, metrics) and [`RouterSettings`]. The server and the Lambda
//! function both build their router here, once per process (per Lambda container), so
//! they are configured the same way by the same flags and `BEDROCK_CHAT_*` variables.

use std::sync::Arc;

use crate::backends::{self, StartupError};
use crate::config::{AuthMode, BackendArgs, HttpArgs};
use crate::http::jwt::JwtVerifier;
use crate::http::{ApiKeys, AppState, Authenticator, Metrics, RouterSettings};

/// The router's state the settings describe: the chat service on its backends, the
/// authenticator, fresh metrics.
///
/// # Errors
/// A [`StartupError`] naming the setting at fault: a malformed URL, a service that cannot
/// be reached, an auth mode missing what it needs.
pub async fn state(backends: &BackendArgs, http: &HttpArgs) -> Result<AppState, StartupError> {
    let service = backends::service(backends).await?;
    let auth = authenticator(http).await?;
    Ok(AppState {
        service,
        auth: Arc::new(auth),
        metrics: Metrics::new(),
    })
}

/// The router's own settings: CORS origins, body limit, request timeout.
pub fn router_settings(http: &HttpArgs) -> RouterSettings {
    RouterSettings {
        cors_origins: http.cors_origins.clone(),
        max_body_bytes: http.max_body_bytes,
        max_attachment_body_bytes: http.max_attachment_body_bytes,
        request_timeout: http.request_timeout,
    }
}

/// How callers are identified, from `--auth` and its companions. With `--auth jwt` the
/// signing keys are fetched now, so a wrong JWKS URL fails at start, not on the first
/// request.
///
/// # Errors
/// [`StartupError::Setting`] for an auth mode missing its settings, an unreadable or
/// malformed key file, or a JWKS that cannot be fetched.
pub async fn authenticator(http: &HttpArgs) -> Result<Authenticator, StartupError> {
    match http.auth {
        AuthMode::None => Ok(Authenticator::Anonymous {
            secure_cookies: http.secure_cookies,
            trust_forwarded_for: http.trust_forwarded_for,
        }),
        AuthMode::ApiKey => {
            let path = http.api_keys.as_ref().ok_or(StartupError::Setting {
                setting: "--auth",
                reason: "api-key needs --api-keys FILE".into(),
            })?;
            let keys = ApiKeys::load(path).map_err(|e| StartupError::Setting {
                setting: "--api-keys",
                reason: e.to_string(),
            })?;
            Ok(Authenticator::ApiKeys(keys))
        }
        AuthMode::Jwt => {
            let (Some(url), Some(issuer)) = (&http.jwks_url, &http.jwt_issuer) else {
                return Err(StartupError::Setting {
                    setting: "--auth",
                    reason: "jwt needs --jwks-url and --jwt-issuer".into(),
                });
            };
            let verifier = JwtVerifier::new(url.clone(), issuer.clone(), http.jwt_audience.clone());
            let keys = verifier
                .refresh()
                .await
                .map_err(|e| StartupError::Setting {
                    setting: "--jwks-url",
                    reason: format!("{url}: {e}"),
                })?;
            tracing::info!(keys, "loaded the JWT signing keys");
            Ok(Authenticator::Jwt(Arc::new(verifier)))
        }
    }
}
