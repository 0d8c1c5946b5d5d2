//! The HTTP API as an AWS Lambda function behind API Gateway: the server's own router
//! under `lambda_http`, configured by the same `BEDROCK_CHAT_*` variables as the server
//! (`BEDROCK_CHAT_STORE=dynamodb://TABLE`, `BEDROCK_CHAT_LIMITER=dynamodb://TABLE`,
//! `BEDROCK_CHAT_MODEL=bedrock:MODEL_ID`, limits, auth). Backends, SDK clients and the
//! router are built once per container, before the first event; the per-IP limit uses the
//! source IP in the event's request context. With `BEDROCK_CHAT_LAMBDA_STREAMING=true`
//! answers use Lambda response streaming (a Function URL in `RESPONSE_STREAM` mode), else
//! they are buffered as API Gateway requires. Build it with
//! `cargo lambda build --release --example lambda`, run it locally with
//! `cargo lambda watch --examples`, deploy it with `deploy/lambda/template.yaml`.

use std::process::ExitCode;

use bedrock_chat_examples::config::{self, LambdaConfig};
use bedrock_chat_examples::{app, http, lambda, telemetry};
use clap::Parser;

/// Exit code for a configuration or startup error.
const EXIT_CONFIG: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(e) = config::load_dotenv() {
        eprintln!("error: .env: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    // Lambda passes no arguments: the environment is the configuration.
    let config = LambdaConfig::parse();
    telemetry::init(config.backends.log_format);

    // Cold start: connect the backends and build the router once for this container.
    let state = match app::state(&config.backends, &config.http).await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    tracing::info!(
        store = state.service.store().backend(),
        model = state.service.model().model_id(),
        streaming = config.response_streaming,
        "ready for events"
    );
    let handler = lambda::handler(http::router(state, &app::router_settings(&config.http)));

    let served = if config.response_streaming {
        lambda_http::run_with_streaming_response(handler).await
    } else {
        lambda_http::run(handler).await
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: the Lambda runtime stopped: {e}");
            ExitCode::FAILURE
        }
    }
}
