//! The example HTTP server: the chat API (REST and Server-Sent Events), conversation
//! history, rate limits, health checks and metrics, on the backends its flags name. With
//! no flags it runs on embedded defaults (SQLite file `bedrock-chat.db`, in-memory limiter,
//! the offline model), needing no service or AWS account:
//! `cargo run --release --example server` (`-- --help` lists every flag).

use std::net::SocketAddr;
use std::process::ExitCode;

use bedrock_chat_examples::config::{self, ServerConfig};
use bedrock_chat_examples::{app, http, telemetry};
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
    let state = app::state(&config.backends, &config.http)
        .await
        .map_err(|e| e.to_string())?;
    let service = state.service.clone();
    let app = http::router(state, &app::router_settings(&config.http));

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
