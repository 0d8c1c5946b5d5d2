//! JWT bearer auth end to end: tokens signed by a test RSA key (tests/fixtures/jwt),
//! its JWKS served by a local HTTP endpoint, the API router in `--auth jwt` mode.
//! Every way a token can be wrong is a 401 with `WWW-Authenticate`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use bedrock_chat_core::{ChatService, OfflineChatModel};
use bedrock_chat_examples::http::jwt::JwtVerifier;
use bedrock_chat_examples::http::{self, AppState, Authenticator, Metrics, RouterSettings};
use bedrock_chat_store::InMemoryHistoryStore;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TEST";
const CLIENT_ID: &str = "app-client-1";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).unwrap()
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

struct Setup {
    api: String,
    jwks_fetches: Arc<AtomicUsize>,
}

async fn setup() -> Setup {
    let jwks = String::from_utf8(fixture("jwks.json")).unwrap();
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let jwks_base = serve(Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let jwks = jwks.clone();
            async move { ([("content-type", "application/json")], jwks) }
        }),
    ))
    .await;
    let verifier = JwtVerifier::new(
        format!("{jwks_base}/.well-known/jwks.json"),
        ISSUER.to_owned(),
        Some(CLIENT_ID.to_owned()),
    );
    assert_eq!(verifier.refresh().await.unwrap(), 1);
    let service = ChatService::builder(
        Arc::new(OfflineChatModel::new()),
        Arc::new(InMemoryHistoryStore::new()),
    )
    .build();
    let state = AppState {
        service,
        auth: Arc::new(Authenticator::Jwt(Arc::new(verifier))),
        metrics: Metrics::new(),
    };
    Setup {
        api: serve(http::router(state, &RouterSettings::default())).await,
        jwks_fetches: fetches,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn id_token_claims(sub: &str) -> Value {
    json!({
        "sub": sub,
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "token_use": "id",
        "exp": now() + 600,
        "iat": now(),
    })
}

fn sign(claims: &Value, kid: &str, key: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, &EncodingKey::from_rsa_der(&fixture(key))).unwrap()
}

fn good(claims: &Value) -> String {
    sign(claims, "test-key-1", "signing-key.der")
}

async fn send(
    setup: &Setup,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/v1/chats", setup.api))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_valid_id_or_access_token_names_the_user_by_sub() {
    let setup = setup().await;
    let (status, _, sent) = send(
        &setup,
        Some(&good(&id_token_claims("alice-sub"))),
        json!({"message": "hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let chat = sent["chat_id"].as_str().unwrap().to_owned();

    // A Cognito access token: no `aud`, `client_id` instead; same user, same history.
    let access = good(&json!({
        "sub": "alice-sub",
        "iss": ISSUER,
        "client_id": CLIENT_ID,
        "token_use": "access",
        "exp": now() + 600,
    }));
    let (status, _, again) = send(
        &setup,
        Some(&access),
        json!({"message": "more", "chat_id": chat}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");

    // Another user's valid token does not reach alice's conversation.
    let (status, _, _) = send(
        &setup,
        Some(&good(&id_token_claims("bob-sub"))),
        json!({"message": "mine?", "chat_id": chat}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_bad_token_is_401_with_a_challenge() {
    let setup = setup().await;
    let mut expired = id_token_claims("u");
    expired["exp"] = json!(now() - 3600);
    let mut wrong_issuer = id_token_claims("u");
    wrong_issuer["iss"] = json!("https://evil.example");
    let mut wrong_audience = id_token_claims("u");
    wrong_audience["aud"] = json!("another-client");
    let mut no_sub = id_token_claims("u");
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut refresh_use = id_token_claims("u");
    refresh_use["token_use"] = json!("refresh");
    let payload = base64_url(id_token_claims("u").to_string().as_bytes());
    let alg_none = format!(
        "{}.{payload}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let hs256 = encode(
        &Header {
            kid: Some("test-key-1".into()),
            ..Header::new(Algorithm::HS256)
        },
        &id_token_claims("u"),
        &EncodingKey::from_secret(&fixture("jwks.json")),
    )
    .unwrap();

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("not.a.jwt".into())),
        ("expired", Some(good(&expired))),
        ("wrong issuer", Some(good(&wrong_issuer))),
        ("wrong audience", Some(good(&wrong_audience))),
        ("no sub", Some(good(&no_sub))),
        ("refresh token", Some(good(&refresh_use))),
        (
            "unknown kid",
            Some(sign(&id_token_claims("u"), "who-knows", "signing-key.der")),
        ),
        (
            "bad signature",
            Some(sign(&id_token_claims("u"), "test-key-1", "rogue-key.der")),
        ),
        ("alg none", Some(alg_none)),
        ("alg HS256", Some(hs256)),
    ];
    for (what, token) in cases {
        let (status, headers, body) =
            send(&setup, token.as_deref(), json!({"message": "hi"})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer realm=\"bedrock-chat\""),
            "{what}: {challenge}"
        );
        assert_eq!(body["error"], "Unauthorized", "{what}");
    }
    // Unknown key ids refetch the JWKS at most once per interval: the key endpoint is not
    // a lever for attackers.
    assert!(setup.jwks_fetches.load(Ordering::SeqCst) <= 2);
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
