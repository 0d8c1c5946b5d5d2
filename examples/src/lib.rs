//! The app code the example programs share, so that a fix lands once:
//!
//! - [`config`]: flags, `BEDROCK_CHAT_*` environment variables and `.env`;
//! - [`backends`]: the store, limiters and model those settings name, composed into a
//!   [`ChatService`](bedrock_chat_core::ChatService);
//! - [`app`]: the router's state and settings from those settings, built once per process
//!   by the server and the Lambda function alike;
//! - [`cli`]: the CLI's commands, interactive chat and exit codes;
//! - [`export`]: a conversation's export, attachments shown without their bytes;
//! - [`http`]: the axum router of the HTTP API (the server and the tests serve it);
//! - [`lambda`]: that router as an AWS Lambda handler (`lambda_http`);
//! - [`telemetry`]: JSON or pretty logs.

pub mod app;
pub mod backends;
pub mod cli;
pub mod config;
pub mod export;
pub mod http;
pub mod lambda;
pub mod telemetry;
pub mod tools;
