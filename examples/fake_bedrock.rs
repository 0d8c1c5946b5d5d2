//! A fake Amazon Bedrock Runtime on loopback, for trying the server, the CLI or your own
//! code without AWS: it prints its URL and serves Converse, ConverseStream, InvokeModel and
//! InvokeModelWithResponseStream (echoing the last user message) until Ctrl-C. Run it with
//! `cargo run -p bedrock-chat-examples --example fake_bedrock`; set `FAKE_BEDROCK_ADDR`
//! (default `127.0.0.1:0`, any free port), `FAKE_BEDROCK_TTFT_MS` and
//! `FAKE_BEDROCK_DELTA_MS` (delays of streamed replies) to change it.

use std::net::SocketAddr;
use std::time::Duration;

use bedrock_chat_core::testkit::{FakeBedrock, Timing, FAKE_REGION};

/// A number of milliseconds from the environment, or 0.
fn millis(var: &str) -> Result<Duration, Box<dyn std::error::Error>> {
    match std::env::var(var) {
        Ok(value) => Ok(Duration::from_millis(value.trim().parse().map_err(
            |e| format!("{var} must be a number of milliseconds, not {value:?}: {e}"),
        )?)),
        Err(_) => Ok(Duration::ZERO),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = match std::env::var("FAKE_BEDROCK_ADDR") {
        Ok(value) => value
            .parse()
            .map_err(|e| format!("FAKE_BEDROCK_ADDR must be host:port, not {value:?}: {e}"))?,
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let fake = FakeBedrock::start_on(addr).await?;
    // Any model id, so that whatever a program is configured with works.
    fake.accept_any_model();
    fake.set_timing(Timing {
        time_to_first_token: millis("FAKE_BEDROCK_TTFT_MS")?,
        delta_delay: millis("FAKE_BEDROCK_DELTA_MS")?,
    });

    println!("fake Bedrock Runtime listening on {}", fake.url());
    println!("point an AWS SDK at it with:");
    println!("  export AWS_ENDPOINT_URL_BEDROCK_RUNTIME={}", fake.url());
    println!("  export AWS_REGION={FAKE_REGION} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test");
    println!("press Ctrl-C to stop");

    tokio::signal::ctrl_c().await?;
    println!("served {} requests; bye", fake.request_count());
    Ok(())
}
