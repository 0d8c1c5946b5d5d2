//! The example HTTP server: the chat API (REST and Server-Sent Events), conversation
//! history, rate limits, health checks and metrics, on the backends its flags name. With
//! no flags it runs on embedded defaults (SQLite file `bedrock-chat.db`, in-memory limiter,
//! the offline model), needing no service or AWS account:
//! `cargo run --release --example server` (`-- --help` lists every flag).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use bedrock_chat_examples::config::{self, AuthMode, ServerConfig};
use bedrock_chat_examples::http::jwt::JwtVerifier;
use bedrock_chat_examples::http::{
    self, ApiKeys, AppState, Authenticator, Metrics, RouterSettings,
};
use bedrock_chat_examples::{backends, telemetry};
use clap::Parser;

/// Exit code for a configuration or startup error.
const EXIT_CONFIG: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(e) = config::load_dotenv() {
        eprintln!("error: .env: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let config = ServerConfig::parse();
    telemetry::init(config.backends.log_format);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

async fn run(config: ServerConfig) -> Result<(), String> {
    let service = backends::service(&config.backends)
        .await
        .map_err(|e| e.to_string())?;
    let auth = authenticator(&config).await?;
    let state = AppState {
        service: service.clone(),
        auth: Arc::new(auth),
        metrics: Metrics::new(),
    };
    let settings = RouterSettings {
        cors_origins: config.http.cors_origins.clone(),
        max_body_bytes: config.http.max_body_bytes,
        request_timeout: config.http.request_timeout,
    };
    let app = http::router(state, &settings);

    let listener = tokio::net::TcpListener::bind(config.http.bind)
        .await
        .map_err(|e| format!("--bind {}: {e}", config.http.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // The one line on stdout: scripts and tests read the port from it.
    println!("listening on http://{addr}");
    tracing::info!(
        %addr,
        store = service.store().backend(),
        model = service.model().model_id(),
        "serving"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        let _ = stop_tx.send(true);
    });
    let drain = config.http.shutdown_timeout;
    let mut stopping = stop_rx.clone();
    let served = tokio::select! {
        result = server => result.map_err(|e| e.to_string()),
        // After the signal, requests in flight get `drain` to finish.
        () = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
            tokio::time::sleep(drain).await;
        } => {
            tracing::warn!(seconds = drain.as_secs(), "requests still in flight at the shutdown deadline");
            Ok(())
        }
    };
    // Replies still being generated for clients that went away are stored before exit.
    if tokio::time::timeout(drain, service.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("streamed replies still generating at the shutdown deadline");
    }
    tracing::info!("stopped");
    served
}

async fn authenticator(config: &ServerConfig) -> Result<Authenticator, String> {
    let http = &config.http;
    match http.auth {
        AuthMode::None => Ok(Authenticator::Anonymous {
            secure_cookies: http.secure_cookies,
            trust_forwarded_for: http.trust_forwarded_for,
        }),
        AuthMode::ApiKey => {
            let path = http
                .api_keys
                .as_ref()
                .ok_or("--auth api-key needs --api-keys FILE")?;
            let keys = ApiKeys::load(path).map_err(|e| e.to_string())?;
            Ok(Authenticator::ApiKeys(keys))
        }
        AuthMode::Jwt => {
            let (Some(url), Some(issuer)) = (&http.jwks_url, &http.jwt_issuer) else {
                return Err("--auth jwt needs --jwks-url and --jwt-issuer".into());
            };
            let verifier = JwtVerifier::new(url.clone(), issuer.clone(), http.jwt_audience.clone());
            let keys = verifier
                .refresh()
                .await
                .map_err(|e| format!("--jwks-url {url}: {e}"))?;
            tracing::info!(keys, "loaded the JWT signing keys");
            Ok(Authenticator::Jwt(Arc::new(verifier)))
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
