//! JWT bearer tokens verified against a JWKS: RS256 signatures, `exp`, `iss` and the
//! audience checked; Cognito-compatible (ID tokens carry `aud`, access tokens
//! `client_id`); `sub` is the user. Keys are cached and fetched again when a token names a
//! key id the cache lacks, at most once per [`MIN_REFRESH_INTERVAL`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bedrock_chat_core::UserId;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

/// The least time between two fetches of the JWKS, so tokens with made-up key ids cannot
/// make the server hammer the key endpoint.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Not a well-formed JWT, or an algorithm other than RS256.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// No key with the token's `kid` is published.
    #[error("unknown signing key")]
    UnknownKey,
    /// Signature, expiry, issuer or audience check failed.
    #[error("{0}")]
    Invalid(String),
    /// The key endpoint could not be read.
    #[error("the signing keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

/// Verifies bearer tokens.
pub struct JwtVerifier {
    jwks_url: String,
    issuer: String,
    audience: Option<String>,
    client: reqwest::Client,
    keys: RwLock<KeyCache>,
}

struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    token_use: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Self::One(aud) => aud == wanted,
            Self::Many(auds) => auds.iter().any(|a| a == wanted),
        }
    }
}

impl JwtVerifier {
    /// A verifier for tokens issued by `issuer`, signed by keys at `jwks_url`, for
    /// `audience` (checked against `aud`, or Cognito's `client_id` for access tokens).
    pub fn new(jwks_url: String, issuer: String, audience: Option<String>) -> Self {
        Self {
            jwks_url,
            issuer,
            audience,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: RwLock::new(KeyCache {
                keys: HashMap::new(),
                fetched_at: None,
            }),
        }
    }

    /// Fetches the keys now (at start, so a wrong URL shows at once).
    ///
    /// # Errors
    /// [`JwtError::KeysUnavailable`] when the JWKS cannot be fetched or parsed.
    pub async fn refresh(&self) -> Result<usize, JwtError> {
        let set: JwkSet = self
            .client
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| JwtError::KeysUnavailable(e.to_string()))?
            .json()
            .await
            .map_err(|e| JwtError::KeysUnavailable(e.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, key);
                }
                Err(e) => tracing::warn!(kid, error = %e, "skipping an unusable JWK"),
            }
        }
        let count = keys.len();
        let mut cache = self.keys.write().await;
        cache.keys = keys;
        cache.fetched_at = Some(Instant::now());
        Ok(count)
    }

    /// The user a token names, when it is valid.
    ///
    /// # Errors
    /// A [`JwtError`] saying why it is not.
    pub async fn verify(&self, token: &str) -> Result<UserId, JwtError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(JwtError::Malformed(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| JwtError::Malformed("the token names no key (kid)".into()))?;
        let key = self.key(&kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // The audience is checked below: Cognito access tokens carry `client_id` instead.
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| JwtError::Invalid(e.to_string()))?
            .claims;
        if let Some(wanted) = &self.audience {
            let ok = match (&claims.aud, &claims.client_id) {
                (Some(aud), _) => aud.contains(wanted),
                (None, Some(client_id)) => client_id == wanted,
                (None, None) => false,
            };
            if !ok {
                return Err(JwtError::Invalid(
                    "the token is for another audience".into(),
                ));
            }
        }
        if let Some(token_use) = &claims.token_use {
            if token_use != "id" && token_use != "access" {
                return Err(JwtError::Invalid(format!(
                    "token_use `{token_use}` is not accepted"
                )));
            }
        }
        UserId::new(claims.sub).map_err(|e| JwtError::Invalid(format!("sub: {e}")))
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, JwtError> {
        {
            let cache = self.keys.read().await;
            if let Some(key) = cache.keys.get(kid) {
                return Ok(key.clone());
            }
            if cache
                .fetched_at
                .is_some_and(|at| at.elapsed() < MIN_REFRESH_INTERVAL)
            {
                return Err(JwtError::UnknownKey);
            }
        }
        // A key we have not seen: the issuer may have rotated its keys.
        self.refresh().await?;
        self.keys
            .read()
            .await
            .keys
            .get(kid)
            .cloned()
            .ok_or(JwtError::UnknownKey)
    }
}
