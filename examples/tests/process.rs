//! The server binary as its users run it: `target/<profile>/examples/server` started as a
//! child process on an ephemeral loopback port, called over HTTP and stopped with SIGTERM as
//! a service manager stops it. What only a real process shows: the embedded defaults (a
//! SQLite file in the working directory that outlives the process), graceful shutdown,
//! the exit codes and messages of bad configuration, `--help`; with the `service-tests`
//! feature, two processes sharing one PostgreSQL store and one Redis limiter.
//!
//! `cargo test` builds the examples (as programs, into `target/<profile>/examples/`) before
//! it runs the tests; a run narrowed to this file does not, so build the binary first:
//! `cargo build -p bedrock-chat-examples --example server && cargo test -p
//! bedrock-chat-examples --test process` (`cargo test --example server` builds it as a test
//! harness instead, which is not the server).
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;
use support::{run_to_exit, Scratch, Server};

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

/// The identity cookie of anonymous callers.
const COOKIE: &str = "bedrock_chat_id";

/// The value of the identity cookie a response sets.
fn identity_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            v.split(';')
                .next()?
                .trim()
                .strip_prefix(COOKIE)?
                .strip_prefix('=')
        })
        .map(str::to_owned)
        .next()
        .unwrap_or_else(|| panic!("no {COOKIE} cookie set: {:?}", response.headers()))
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn with_no_store_flag_it_keeps_history_in_bedrock_chat_db_across_restarts() {
    let dir = Scratch::new("defaults");
    let client = reqwest::Client::new();

    let mut server = Server::start(dir.path(), &[], &[]).await;
    let database = dir.path().join("bedrock-chat.db");
    let mut magic = [0_u8; 16];
    std::fs::File::open(&database)
        .unwrap_or_else(|e| panic!("{}: {e}", database.display()))
        .read_exact(&mut magic)
        .unwrap();
    assert_eq!(&magic, b"SQLite format 3\0", "a SQLite database");
    let response = client
        .post(server.url("/api/v1/chats"))
        .json(&json!({"message": "remember me"}))
        .send()
        .await
        .unwrap();
    let cookie = format!("{COOKIE}={}", identity_cookie(&response));
    let (status, sent) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["model"], "offline", "the default model");
    let chat_id = sent["chat_id"].as_str().unwrap().to_owned();
    server.stop().await;
    drop(server);

    let server = Server::start(dir.path(), &[], &[]).await;
    let (status, list) = json_of(
        client
            .get(server.url("/api/v1/conversations"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let conversations = list["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 1, "{list}");
    assert_eq!(conversations[0]["chat_id"], chat_id.as_str());
    assert_eq!(conversations[0]["message_count"], 2);
    let (_, messages) = json_of(
        client
            .get(server.url(&format!("/api/v1/conversations/{chat_id}/messages")))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(messages["items"][0]["content"], "remember me");
    assert_eq!(messages["items"][1]["content"], sent["response"]);

    // Another identity sees none of it.
    let (_, other) = json_of(
        client
            .get(server.url("/api/v1/conversations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(other["conversations"], json!([]));
}

/// A bad setting: exit code 2 and one `error:` line on stderr that names the flag.
fn refused(args: &[&str], flag: &str) {
    let dir = Scratch::new("refused");
    let mut all = vec!["--bind", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let (status, stdout, stderr) = run_to_exit(dir.path(), &all);
    assert_eq!(status.code(), Some(2), "{args:?}: {status}\n{stderr}");
    assert!(
        !stdout.contains("listening on"),
        "{args:?} started serving: {stdout}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.to_ascii_lowercase().contains("error"))
        .collect();
    assert_eq!(errors.len(), 1, "{args:?}: one error line\n{stderr}");
    assert!(
        errors[0].starts_with("error: ") && errors[0].contains(flag),
        "{args:?}: the error names {flag}: {stderr}"
    );
    // Nothing but the error, and at most clap's pointer to --help.
    let other: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with("error: "))
        .collect();
    assert!(
        other.iter().all(|line| line.contains("--help")),
        "{args:?}: more than the error on stderr\n{stderr}"
    );
}

#[test]
fn an_unknown_store_scheme_exits_2_naming_store() {
    refused(&["--store", "mysql://x"], "--store");
}

#[test]
fn a_store_url_as_limiter_exits_2_naming_limiter() {
    refused(&["--store", "memory", "--limiter", "sqlite:x"], "--limiter");
}

#[test]
fn a_zero_rate_limit_exits_2_naming_rate_limit() {
    refused(
        &["--store", "memory", "--rate-limit", "0/min"],
        "--rate-limit",
    );
}

#[test]
fn api_key_auth_without_a_key_file_exits_2_naming_api_keys() {
    refused(&["--store", "memory", "--auth", "api-key"], "--api-keys");
}

/// Whether a line of `help` introduces `flag` (`--store <STORE>`, `--log-message-text`).
fn mentions_flag(help: &str, flag: &str) -> bool {
    help.lines().any(|line| {
        line.trim_start()
            .strip_prefix(flag)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    })
}

#[test]
fn help_documents_every_flag_with_its_environment_variable() {
    use clap::CommandFactory;

    let dir = Scratch::new("help");
    let (status, help, stderr) = run_to_exit(dir.path(), &["--help"]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    // The flags the server's issue lists, each with its variable.
    for (flag, var) in [
        ("--bind", "BEDROCK_CHAT_BIND"),
        ("--store", "BEDROCK_CHAT_STORE"),
        ("--limiter", "BEDROCK_CHAT_LIMITER"),
        ("--rate-limit", "BEDROCK_CHAT_RATE_LIMIT"),
        ("--global-rate-limit", "BEDROCK_CHAT_GLOBAL_RATE_LIMIT"),
        ("--token-budget", "BEDROCK_CHAT_TOKEN_BUDGET"),
        ("--model", "BEDROCK_CHAT_MODEL"),
        ("--system-prompt", "BEDROCK_CHAT_SYSTEM_PROMPT"),
        ("--temperature", "BEDROCK_CHAT_TEMPERATURE"),
        ("--max-tokens", "BEDROCK_CHAT_MAX_TOKENS"),
        ("--top-p", "BEDROCK_CHAT_TOP_P"),
        ("--guardrail", "BEDROCK_CHAT_GUARDRAIL"),
        ("--auth", "BEDROCK_CHAT_AUTH"),
        ("--api-keys", "BEDROCK_CHAT_API_KEYS"),
        ("--jwks-url", "BEDROCK_CHAT_JWKS_URL"),
        ("--jwt-issuer", "BEDROCK_CHAT_JWT_ISSUER"),
        ("--jwt-audience", "BEDROCK_CHAT_JWT_AUDIENCE"),
        ("--cors-origin", "BEDROCK_CHAT_CORS_ORIGINS"),
        ("--max-body-bytes", "BEDROCK_CHAT_MAX_BODY_BYTES"),
        ("--max-message-chars", "BEDROCK_CHAT_MAX_MESSAGE_CHARS"),
        ("--request-timeout", "BEDROCK_CHAT_REQUEST_TIMEOUT"),
        ("--log-format", "BEDROCK_CHAT_LOG_FORMAT"),
        ("--log-message-text", "BEDROCK_CHAT_LOG_MESSAGE_TEXT"),
    ] {
        assert!(mentions_flag(&help, flag), "{flag} in\n{help}");
        assert!(help.contains(&format!("[env: {var}=")), "{var} in\n{help}");
    }
    for default in ["sqlite:bedrock-chat.db", "10/min", "127.0.0.1:8080"] {
        assert!(
            help.contains(&format!("[default: {default}]")),
            "{default} in\n{help}"
        );
    }
    // And every flag the binary has, each with a BEDROCK_CHAT_ variable and its default.
    let config = bedrock_chat_examples::config::ServerConfig::command();
    for arg in config.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        assert!(
            mentions_flag(&help, &format!("--{long}")),
            "--{long} in\n{help}"
        );
        let var = arg
            .get_env()
            .unwrap_or_else(|| panic!("--{long} has no environment variable"))
            .to_string_lossy();
        assert!(var.starts_with("BEDROCK_CHAT_"), "--{long}: {var}");
        assert!(help.contains(&format!("[env: {var}=")), "{var} in\n{help}");
        for default in arg.get_default_values() {
            let default = default.to_string_lossy();
            assert!(
                help.contains(&format!("[default: {default}]")),
                "--{long}'s default {default} in\n{help}"
            );
        }
    }
}

#[cfg(feature = "fake-bedrock")]
mod fake_bedrock {
    //! Through a `FakeBedrock` on loopback, as the AWS SDK finds it: by
    //! `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`.

    use super::*;
    use crate::support::{aws_env, parse_sse, FAKE_MODEL};
    use bedrock_chat_core::testkit::{FakeBedrock, FakeReply, Fault};
    use std::net::TcpStream;

    use futures::StreamExt;

    impl Server {
        /// Waits until a new TCP connection to the server is refused.
        async fn wait_refusing(&mut self, limit: Duration) {
            let deadline = Instant::now() + limit;
            while TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
                if Instant::now() > deadline {
                    panic!(
                        "new connections still accepted {limit:?} after SIGTERM\n{}",
                        self.log()
                    );
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    async fn start(dir: &Path, args: &[&str], fake: &FakeBedrock) -> Server {
        let env = aws_env(fake);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut all = vec!["--model", FAKE_MODEL];
        all.extend_from_slice(args);
        Server::start(dir, &all, &env).await
    }

    /// A slow reply: `n` pieces, `delay` apart.
    fn slow_reply(n: usize, delay: Duration) -> (String, FakeReply) {
        let pieces: Vec<String> = (0..n).map(|i| format!("piece{i} ")).collect();
        let text = pieces.concat();
        (
            text,
            FakeReply::text("")
                .with_deltas(pieces)
                .with_delta_delay(delay),
        )
    }

    /// Reads the stream until it holds a `delta` event.
    async fn read_until_delta<B: AsRef<[u8]>>(
        body: &mut (impl futures::Stream<Item = reqwest::Result<B>> + Unpin),
        seen: &mut Vec<u8>,
    ) {
        while !String::from_utf8_lossy(seen).contains("event: delta") {
            let chunk = tokio::time::timeout(Duration::from_secs(30), body.next())
                .await
                .expect("a delta within 30s")
                .expect("the stream ended before a delta")
                .unwrap();
            seen.extend_from_slice(chunk.as_ref());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_mid_stream_refuses_new_connections_finishes_the_stream_and_exits_0() {
        let fake = FakeBedrock::start().await.unwrap();
        let (text, reply) = slow_reply(20, Duration::from_millis(150));
        fake.push_reply(reply);
        let dir = Scratch::new("drain");
        let shutdown_timeout = Duration::from_secs(20);
        let mut server = start(
            dir.path(),
            &["--store", "memory", "--shutdown-timeout", "20s"],
            &fake,
        )
        .await;

        let response = reqwest::Client::new()
            .post(server.url("/api/v1/chats/stream"))
            .json(&json!({"message": "tell me slowly"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.bytes_stream();
        let mut seen = Vec::new();
        read_until_delta(&mut body, &mut seen).await;
        let before = parse_sse(&String::from_utf8_lossy(&seen))
            .iter()
            .filter(|(name, _)| name == "delta")
            .count();

        let signalled = Instant::now();
        server.terminate();
        server.wait_refusing(Duration::from_secs(10)).await;

        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), body.next())
            .await
            .expect("the stream stalled after SIGTERM")
        {
            seen.extend_from_slice(&chunk.unwrap());
        }
        let events = parse_sse(&String::from_utf8_lossy(&seen));
        let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names.first(), Some(&"start"), "{names:?}");
        assert_eq!(names.last(), Some(&"done"), "{names:?}\n{}", server.log());
        let streamed: String = events
            .iter()
            .filter(|(name, _)| name == "delta")
            .map(|(_, data)| data["text"].as_str().unwrap())
            .collect();
        assert_eq!(streamed, text, "the whole reply");
        assert_eq!(events.last().unwrap().1["response"], text.as_str());
        assert!(
            before < 20,
            "SIGTERM came mid-stream: {before} of 20 pieces before it"
        );

        let status = server.wait_exit(shutdown_timeout).await;
        assert_eq!(status.code(), Some(0), "{status}\n{}", server.log());
        assert!(signalled.elapsed() < shutdown_timeout);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reply_whose_client_went_away_is_stored_before_a_sigterm_exit() {
        let fake = FakeBedrock::start().await.unwrap();
        let (text, reply) = slow_reply(12, Duration::from_millis(200));
        fake.push_reply(reply);
        let dir = Scratch::new("disconnect");
        let mut server = start(dir.path(), &[], &fake).await;

        let response = reqwest::Client::new()
            .post(server.url("/api/v1/chats/stream"))
            .json(&json!({"message": "a long answer please"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = format!("{COOKIE}={}", identity_cookie(&response));
        let mut body = response.bytes_stream();
        let mut seen = Vec::new();
        read_until_delta(&mut body, &mut seen).await;
        let chat_id = parse_sse(&String::from_utf8_lossy(&seen))[0].1["chat_id"]
            .as_str()
            .unwrap()
            .to_owned();
        drop(body); // hang up mid-stream
        server.stop().await;
        drop(server);

        // The same SQLite file, read back by a fresh process (no model needed).
        let server = Server::start(dir.path(), &["--model", "offline"], &[]).await;
        let client = reqwest::Client::new();
        let (status, messages) = json_of(
            client
                .get(server.url(&format!("/api/v1/conversations/{chat_id}/messages")))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{messages}");
        let items = messages["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "question and reply stored: {messages}");
        assert_eq!(items[0]["content"], "a long answer please");
        assert_eq!(items[1]["content"], text.as_str(), "the whole reply");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_model_exception_mid_stream_is_an_error_event_and_stores_nothing() {
        let fake = FakeBedrock::start().await.unwrap();
        fake.push_fault(Fault::exception_after(
            2,
            "modelStreamErrorException",
            "the model broke off",
        ));
        let dir = Scratch::new("exception");
        let mut server = start(dir.path(), &["--store", "memory"], &fake).await;
        let client = reqwest::Client::new();
        let response = client
            .post(server.url("/api/v1/chats/stream"))
            .json(&json!({"message": "one two three four five"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = format!("{COOKIE}={}", identity_cookie(&response));
        let events = parse_sse(&response.text().await.unwrap());
        let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names.first(), Some(&"start"), "{names:?}");
        assert!(
            names.contains(&"delta"),
            "the error came mid-stream: {names:?}"
        );
        assert_eq!(names.last(), Some(&"error"), "{names:?}");
        let (_, error) = events.last().unwrap();
        assert!(error["error"].is_string(), "{error}");
        assert!(error["message"].is_string(), "{error}");

        let (status, list) = json_of(
            client
                .get(server.url("/api/v1/conversations"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["conversations"], json!([]), "nothing half-written");
        server.stop().await;
    }
}

#[cfg(feature = "service-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_postgres_store_and_one_redis_limit() {
    use bedrock_chat_core::conformance::{service_url, unique_prefix};

    const LIMIT: usize = 7;
    const EXTRA: usize = 4;

    let postgres = service_url("BEDROCK_CHAT_TEST_POSTGRES_URL");
    let redis = service_url("BEDROCK_CHAT_TEST_REDIS_URL");
    // This run's Redis keys under its own prefix (scripts/test deletes them afterwards).
    let separator = if redis.contains('?') { '&' } else { '?' };
    let limiter = format!("{redis}{separator}prefix={}", unique_prefix());
    let dir = Scratch::new("scale-out");
    let limited = format!("limited-{}", uuid::Uuid::new_v4().simple());
    let limited_key = format!("key-{}", uuid::Uuid::new_v4().simple());
    let chatter = format!("chatter-{}", uuid::Uuid::new_v4().simple());
    let chatter_key = format!("key-{}", uuid::Uuid::new_v4().simple());
    let keys = dir.path().join("api-keys.txt");
    std::fs::write(
        &keys,
        format!("{limited} {limited_key}\n{chatter} {chatter_key}\n"),
    )
    .unwrap();
    // Windows are fixed and aligned to the epoch: an hour's, with the sends kept away from
    // its end, so that all of them fall in one.
    let rate = format!("{LIMIT}/h");
    let into_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 3600;
    if into_hour > 3600 - 120 {
        tokio::time::sleep(Duration::from_secs(3600 - into_hour + 1)).await;
    }
    let args = [
        "--store",
        postgres.as_str(),
        "--limiter",
        limiter.as_str(),
        "--rate-limit",
        rate.as_str(),
        "--auth",
        "api-key",
        "--api-keys",
        keys.to_str().unwrap(),
        "--model",
        "offline",
    ];
    let a = Server::start(dir.path(), &args, &[]).await;
    let b = Server::start(dir.path(), &args, &[]).await;
    let client = reqwest::Client::new();
    let send = |server: &Server, key: &str, body: Value| {
        client
            .post(server.url("/api/v1/chats"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };

    // N + k sends for one user, at once, alternating between the processes.
    let sends = (0..LIMIT + EXTRA).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        send(
            server,
            &limited_key,
            json!({"message": format!("request {i}")}),
        )
    });
    let responses = futures::future::join_all(sends).await;
    let mut passed = 0;
    let mut refused = 0;
    for response in responses {
        let response = response.unwrap();
        match response.status() {
            StatusCode::OK => passed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(response.headers().contains_key("retry-after"));
                refused += 1;
            }
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    }
    assert_eq!((passed, refused), (LIMIT, EXTRA), "exactly {LIMIT} pass");
    for server in [&a, &b] {
        let response = send(server, &limited_key, json!({"message": "one more"}))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let (_, list) = json_of(
        client
            .get(a.url("/api/v1/conversations?limit=100"))
            .bearer_auth(&limited_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        list["conversations"].as_array().unwrap().len(),
        LIMIT,
        "only the sends that passed are stored: {list}"
    );

    // A conversation started on A is listed and continued on B.
    let (status, first) = json_of(
        send(&a, &chatter_key, json!({"message": "hello from A"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let chat_id = first["chat_id"].as_str().unwrap();
    let (status, list) = json_of(
        client
            .get(b.url("/api/v1/conversations"))
            .bearer_auth(&chatter_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["conversations"][0]["chat_id"], chat_id, "{list}");
    let (status, second) = json_of(
        send(
            &b,
            &chatter_key,
            json!({"message": "and on to B", "chat_id": chat_id}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["chat_id"], chat_id);
    let (_, messages) = json_of(
        client
            .get(a.url(&format!("/api/v1/conversations/{chat_id}/messages")))
            .bearer_auth(&chatter_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let contents: Vec<&str> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents.len(), 4, "{messages}");
    assert_eq!(contents[0], "hello from A");
    assert_eq!(contents[2], "and on to B");
}
