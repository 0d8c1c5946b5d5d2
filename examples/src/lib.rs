//! The app code the example programs share, so that a fix lands once:
//!
//! - [`config`]: flags, `BEDROCK_CHAT_*` environment variables and `.env`;
//! - [`backends`]: the store, limiters and model those settings name, composed into a
//!   [`ChatService`](bedrock_chat_core::ChatService);
//! - [`http`]: the axum router of the HTTP API (the server and the tests serve it);
//! - [`telemetry`]: JSON or pretty logs.

pub mod backends;
pub mod config;
pub mod http;
pub mod telemetry;
