//! Time to first byte and to first token of `POST /api/v1/chats/stream`, over loopback,
//! beside the offline model's own time to its first delta (in process), in one run. For
//! each server given as `NAME=http://HOST:PORT` it opens a fresh connection per request
//! (as `curl` would), sends `{"message":"Hello"}` and times, from the moment the request
//! is written, the first byte of the answer and the end of the first `event: delta`. The
//! connection is set up before the clock starts, so loopback's TCP handshake is not
//! counted. `benches/load/run.sh` runs it; by hand:
//! `cargo run --release -p bedrock-chat-benches --example sse_ttfb -- 500 server=http://127.0.0.1:8080`.

use std::time::{Duration, Instant};

use bedrock_chat_core::{ChatModel, ModelEvent, ModelMessage, ModelRequest, OfflineChatModel};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BODY: &str = r#"{"message":"Hello"}"#;

type Error = Box<dyn std::error::Error>;

/// The offline model's own time from `converse_stream` to its first `TextDelta`.
async fn model_first_delta(model: &OfflineChatModel) -> Result<Duration, Error> {
    let request = ModelRequest::new([ModelMessage::user("Hello")]);
    let started = Instant::now();
    let mut stream = model.converse_stream(request).await?;
    while let Some(event) = stream.next().await {
        if matches!(event?, ModelEvent::TextDelta(_)) {
            let took = started.elapsed();
            while stream.next().await.is_some() {}
            return Ok(took);
        }
    }
    Err("the model sent no delta".into())
}

/// (first byte, first delta) of one streamed send to `host_port`.
async fn http_first_delta(host_port: &str) -> Result<(Duration, Duration), Error> {
    let mut socket = TcpStream::connect(host_port).await?;
    socket.set_nodelay(true)?;
    let request = format!(
        "POST /api/v1/chats/stream HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let started = Instant::now();
    socket.write_all(request.as_bytes()).await?;
    let mut seen = Vec::with_capacity(8192);
    let mut buf = [0u8; 8192];
    let mut first_byte = None;
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Err(format!(
                "no delta event in the answer: {}",
                String::from_utf8_lossy(&seen)
            )
            .into());
        }
        first_byte.get_or_insert_with(|| started.elapsed());
        seen.extend_from_slice(&buf[..n]);
        // The first delta is complete once its blank line has arrived.
        if let Some(at) = find(&seen, b"event: delta") {
            if find(&seen[at..], b"\n\n").is_some() {
                let first_delta = started.elapsed();
                if !seen.starts_with(b"HTTP/1.1 200") {
                    return Err("the answer is not a 200".into());
                }
                // Read to the end, untimed, so the server finishes its work before the next.
                while socket.read(&mut buf).await? > 0 {}
                let first_byte = first_byte.unwrap_or(first_delta);
                return Ok((first_byte, first_delta));
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "p50 {:>9.1} µs  p99 {:>9.1} µs",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99)
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args
        .next()
        .ok_or("usage: sse_ttfb RUNS NAME=URL...")?
        .parse()?;
    let targets: Vec<(String, String)> = args
        .map(|a| {
            let (name, url) = a
                .split_once('=')
                .ok_or("targets are NAME=http://HOST:PORT")?;
            let host = url.trim_start_matches("http://").trim_end_matches('/');
            Ok((name.to_owned(), host.to_owned()))
        })
        .collect::<Result<_, Error>>()?;

    let model = OfflineChatModel::new();
    let mut model_samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        model_samples.push(model_first_delta(&model).await?);
    }
    println!(
        "{:<24} first delta  {}",
        "offline model, in process",
        summary(model_samples)
    );

    for (name, host) in &targets {
        // Warm up: connections, allocator, first-use paths.
        for _ in 0..20 {
            http_first_delta(host).await?;
        }
        let (mut bytes, mut deltas) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
        for _ in 0..runs {
            let (b, d) = http_first_delta(host).await?;
            bytes.push(b);
            deltas.push(d);
        }
        println!("{name:<24} first byte   {}", summary(bytes));
        println!("{name:<24} first delta  {}", summary(deltas));
    }
    Ok(())
}
