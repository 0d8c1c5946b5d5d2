//! A bare axum server answering `POST /api/v1/chats` with the same JSON as the example
//! server's answer (same fields, same size; copied once from a real answer), and
//! `POST /api/v1/chats/stream` with the same Server-Sent Events: the floor that
//! `benches/load/run.sh` measures the real server against. It parses the request body as
//! JSON and serializes the answer from a struct, as the real handler does, but has no
//! middleware, no service, no store and no model. It prints `listening on http://HOST:PORT`
//! like the server. Run with
//! `cargo run --release -p bedrock-chat-benches --example bare_axum -- --bind 127.0.0.1:0`.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::response::sse::{Event, Sse};
use axum::routing::post;
use axum::{Json, Router};
use futures::stream;
use serde::{Deserialize, Serialize};

const REPLY: &str = "This is the offline model (no AWS account configured), answering: \"Hello\". I can see 0 earlier messages in this conversation. Configure AWS credentials and a Bedrock model id for real answers.";
const CHAT_ID: &str = "01a20866-3ec9-71e0-a064-6b2f1018fb62";
const MESSAGE_UID: &str = "01a20866-3ec9-71e0-a064-6b301e6db753";
const RESPONSE_SESSION_ID: &str = "16aaa683-8c0f-5888-b422-3cdc8bb0831a";
const TIMESTAMP: &str = "2026-11-23T12:34:08.201635+00:00";

#[derive(Deserialize)]
struct ChatRequest {
    message: String,
}

#[derive(Serialize)]
struct Usage {
    input_tokens: u32,
    output_tokens: u32,
    total_tokens: u32,
}

#[derive(Serialize)]
struct Metadata {
    question: String,
    bedrock_processed: bool,
    timestamp: &'static str,
}

#[derive(Serialize)]
struct ChatResponse {
    response: &'static str,
    chat_id: &'static str,
    message_uid: &'static str,
    response_session_id: &'static str,
    model: &'static str,
    usage: Usage,
    stop_reason: &'static str,
    replayed: bool,
    metadata: Metadata,
    status: &'static str,
}

fn answer(question: String) -> ChatResponse {
    ChatResponse {
        response: REPLY,
        chat_id: CHAT_ID,
        message_uid: MESSAGE_UID,
        response_session_id: RESPONSE_SESSION_ID,
        model: "offline",
        usage: Usage {
            input_tokens: 6,
            output_tokens: 52,
            total_tokens: 58,
        },
        stop_reason: "end_turn",
        replayed: false,
        metadata: Metadata {
            question,
            bedrock_processed: true,
            timestamp: TIMESTAMP,
        },
        status: "success",
    }
}

async fn send(Json(request): Json<ChatRequest>) -> Json<ChatResponse> {
    Json(answer(request.message))
}

#[derive(Serialize)]
struct StartEvent {
    chat_id: &'static str,
    message_uid: &'static str,
    response_session_id: &'static str,
    model: &'static str,
}

#[derive(Serialize)]
struct DeltaEvent<'a> {
    text: &'a str,
}

fn json_event<T: Serialize>(name: &str, data: &T) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name)))
}

async fn send_stream(
    Json(request): Json<ChatRequest>,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let start = json_event(
        "start",
        &StartEvent {
            chat_id: CHAT_ID,
            message_uid: MESSAGE_UID,
            response_session_id: RESPONSE_SESSION_ID,
            model: "offline",
        },
    );
    // The offline model's pieces: three words at a time.
    let words: Vec<&str> = REPLY.split_inclusive(' ').collect();
    let deltas = words
        .chunks(3)
        .map(|chunk| {
            json_event(
                "delta",
                &DeltaEvent {
                    text: &chunk.concat(),
                },
            )
        })
        .collect::<Vec<_>>();
    let done = json_event("done", &answer(request.message));
    Sse::new(stream::iter(
        std::iter::once(start).chain(deltas).chain([done]),
    ))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // `--bind ADDR` as the server takes it, or just `ADDR`.
    let bind: SocketAddr = std::env::args()
        .skip(1)
        .find(|a| a != "--bind")
        .as_deref()
        .unwrap_or("127.0.0.1:0")
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let app = Router::new()
        .route("/api/v1/chats", post(send))
        .route("/api/v1/chats/stream", post(send_stream));
    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
