//! Tools through the HTTP API end to end: the service the server's own flags build
//! (`--tool current_time --tool recent_conversations`, memory backends, the offline model,
//! which calls a tool whose name the message mentions), served by the real router on an
//! ephemeral loopback port and called with a real HTTP client.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;
use support::Api;

use bedrock_chat_examples::backends;
use bedrock_chat_examples::config::ServerConfig;
use bedrock_chat_examples::http::RouterSettings;
use clap::Parser;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn start(flags: &[&str]) -> String {
    let args = [
        "server",
        "--store",
        "memory",
        "--model",
        "offline",
        "--rate-limit",
        "1000/min",
    ];
    let config = ServerConfig::try_parse_from(args.iter().chain(flags)).unwrap();
    let service = backends::service(&config.backends).await.unwrap();
    support::serve_anonymous(service, &RouterSettings::default()).await
}

fn part_types(message: &Value) -> Vec<&str> {
    message["parts"]
        .as_array()
        .map(|parts| parts.iter().map(|p| p["type"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_send_calls_the_clock_and_the_reply_and_its_parts_say_so() {
    let base = start(&["--tool", "current_time"]).await;
    let api = Api::new(&base);
    let (status, reply) = api
        .post(
            "/api/v1/chats",
            &json!({"message": "What is the current time?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let answer = reply["response"].as_str().unwrap();
    assert!(answer.contains("\"now\":"), "{answer}");

    let messages = api.messages(reply["chat_id"].as_str().unwrap()).await;
    let stored = &messages[1];
    assert_eq!(part_types(stored), ["tool_use", "tool_result", "text"]);
    assert_eq!(stored["parts"][0]["name"], "current_time");
    assert_eq!(
        stored["parts"][1]["tool_use_id"], stored["parts"][0]["id"],
        "{stored}"
    );
    assert_eq!(stored["parts"][1]["is_error"], false);
    assert!(stored["parts"][1]["output"]["now"].is_string(), "{stored}");
}

#[tokio::test]
async fn a_streamed_send_has_tool_call_and_tool_result_events_before_the_answer() {
    let base = start(&["--tool", "current_time"]).await;
    let api = Api::new(&base);
    let events = api
        .stream(&json!({"message": "What is the current time, please?"}))
        .await;
    let mut kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    kinds.dedup();
    assert_eq!(
        kinds,
        ["start", "tool_call", "tool_result", "delta", "done"]
    );
    let (_, call) = &events[1];
    let (_, result) = &events[2];
    assert_eq!(call["name"], "current_time");
    assert_eq!(result["id"], call["id"]);
    assert_eq!(result["name"], "current_time");
    assert_eq!(result["is_error"], false);
    assert!(result["output"]["unix_seconds"].is_i64(), "{result}");
}

#[tokio::test]
async fn without_the_flag_no_tool_is_offered() {
    let base = start(&[]).await;
    let api = Api::new(&base);
    let (status, reply) = api
        .post(
            "/api/v1/chats",
            &json!({"message": "What is the current time?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let messages = api.messages(reply["chat_id"].as_str().unwrap()).await;
    assert!(part_types(&messages[1]).is_empty(), "{}", messages[1]);
}

#[tokio::test]
async fn the_history_lookup_sees_only_the_callers_own_conversations() {
    let base = start(&["--tool", "recent_conversations", "--tool", "current_time"]).await;
    let alice = Api::new(&base);
    let bob = Api::new(&base);
    for message in ["Alice's secret plans", "Alice's holiday"] {
        let (status, _) = alice
            .post("/api/v1/chats", &json!({ "message": message }))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = bob
        .post("/api/v1/chats", &json!({"message": "Bob's shopping list"}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (_, reply) = bob
        .post(
            "/api/v1/chats",
            &json!({"message": "List my recent conversations"}),
        )
        .await;
    let messages = bob.messages(reply["chat_id"].as_str().unwrap()).await;
    let output = &messages[1]["parts"][1]["output"];
    let titles: Vec<&str> = output["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Bob's shopping list"], "{output}");
}

#[tokio::test]
async fn bad_tool_flags_are_refused_at_start() {
    let error = ServerConfig::try_parse_from(["server", "--tool", "rm_rf"]).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("current_time") && text.contains("recent_conversations"),
        "{text}"
    );
}
