//! The web chat page in a real headless Chromium: `examples/tests/web/chat.test.mjs`, run by
//! Node with `playwright-core` against the server binary on loopback ports, the model a
//! `FakeBedrock` this test controls.
//!
//! Four servers: the main one (SQLite file, `FakeBedrock`), one with a limit of two
//! requests a minute (for the over-the-limit message), one with API keys (for the token
//! field) and one whose model reasons (a Claude model id, `--reasoning-budget`). The Node script asks for model faults on its stdout (`@fault mid-stream`,
//! `@model-unavailable`, `@slow-reply`) and waits for `ok` on its stdin, so each fault
//! lands on the send it is meant for (`@check` answers `ok` once every scripted answer has
//! been used).
//!
//! Needs Node.js, `npm ci` run in `examples/tests/web/` and Debian's `chromium`:
//! `scripts/test` sees to all three and turns on the `browser-tests` feature.
#![cfg(all(unix, feature = "browser-tests", feature = "fake-bedrock"))]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bedrock_chat_core::testkit::{FakeBedrock, FakeReply, Fault, Timing};
use support::{aws_env, Scratch, Server, FAKE_MODEL};

/// The longest the whole browser run may take.
const RUN_LIMIT: Duration = Duration::from_secs(600);
/// The API key of the key-protected server, and its user.
const API_KEY: &str = "browser-test-key-0123456789";
/// A model that `FakeBedrock` answers with reasoning when thinking is asked for.
const REASONING_MODEL: &str = "bedrock:us.anthropic.claude-sonnet-4-20250514-v1:0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_works_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/web/chat.test.mjs");
    let playwright = root.join("tests/web/node_modules/playwright-core");
    assert!(
        playwright.is_dir(),
        "playwright-core is not installed: run `npm ci` in {} (scripts/test does)",
        root.join("tests/web").display()
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "no Chromium at {chromium}: install Debian's `chromium` (scripts/test does) or set CHROMIUM"
    );

    let fake = FakeBedrock::start().await.unwrap();
    fake.accept_any_model();
    // Answers arrive word by word, as a real model's do.
    fake.set_timing(Timing {
        time_to_first_token: Duration::from_millis(60),
        delta_delay: Duration::from_millis(25),
    });
    let env = aws_env(&fake);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let dir = Scratch::new("browser");
    let keys = dir.path().join("api-keys");
    std::fs::write(&keys, format!("browser-user {API_KEY}\n")).unwrap();
    let keys = keys.to_str().unwrap();
    let model = ["--model", FAKE_MODEL];
    let main = Server::start(
        dir.path(),
        &[
            &model[..],
            &["--store", "sqlite:chat.db", "--rate-limit", "1000/min"],
        ]
        .concat(),
        &env,
    )
    .await;
    let limited = Server::start(
        dir.path(),
        &[&model[..], &["--store", "memory", "--rate-limit", "2/min"]].concat(),
        &env,
    )
    .await;
    let keyed = Server::start(
        dir.path(),
        &[
            &model[..],
            &["--store", "memory", "--auth", "api-key", "--api-keys", keys],
        ]
        .concat(),
        &env,
    )
    .await;

    let reasoning = Server::start(
        dir.path(),
        &[
            "--model",
            REASONING_MODEL,
            "--reasoning-budget",
            "2048",
            "--store",
            "sqlite:reasoning.db",
            "--rate-limit",
            "1000/min",
        ],
        &env,
    )
    .await;

    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("browser-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let mut node = Command::new("node")
        .arg(&script)
        .env("CHAT_URL", main.url(""))
        .env("LIMITED_URL", limited.url(""))
        .env("KEYED_URL", keyed.url(""))
        .env("REASONING_URL", reasoning.url(""))
        .env("API_KEY", API_KEY)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT_DIR", &screenshots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start node (is Node.js installed?): {e}"));

    // The script's requests for faults, answered on its stdin; the rest is its report.
    let stdout = node.stdout.take().unwrap();
    let mut stdin = node.stdin.take().unwrap();
    let pid = node.id();
    let reader = std::thread::spawn(move || {
        let mut report = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match line.as_str() {
                "@fault mid-stream" => fake.push_fault(Fault::exception_after(
                    3,
                    "modelStreamErrorException",
                    "the model broke off",
                )),
                // Bedrock answering 503 to every attempt the SDK makes (three).
                "@model-unavailable" => {
                    for _ in 0..3 {
                        fake.push_fault(Fault::service_unavailable());
                    }
                }
                "@check" => {}
                "@slow-reply" => {
                    let pieces: Vec<String> = (0..60).map(|i| format!("slow{i} ")).collect();
                    fake.push_reply(
                        FakeReply::text("")
                            .with_deltas(pieces)
                            .with_delta_delay(Duration::from_millis(100)),
                    );
                }
                _ => {
                    println!("{line}");
                    report.push_str(&line);
                    report.push('\n');
                    continue;
                }
            }
            // `@check`: every scripted answer was used by the send it was meant for.
            let answer = match fake.pending() {
                n if n > 0 && line == "@check" => format!("{n} scripted answers left unused"),
                _ => "ok".to_owned(),
            };
            if writeln!(stdin, "{answer}").is_err() {
                break;
            }
        }
        report
    });

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(node.wait());
    });
    let Ok(status) = rx.recv_timeout(RUN_LIMIT) else {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("the browser tests were still running after {RUN_LIMIT:?}");
    };
    let report = reader.join().unwrap();
    let status = status.unwrap();
    let mut servers = [main, limited, keyed, reasoning];
    assert!(
        status.success(),
        "the browser tests failed ({status}); their report is above. Server logs:\n{}",
        servers
            .iter_mut()
            .map(Server::log)
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    assert!(
        report.contains("fail 0") && !report.contains("pass 0"),
        "the report does not show passing tests:\n{report}"
    );
    for name in [
        "desktop.png",
        "phone.png",
        "reasoning.png",
        "reasoning-dark.png",
    ] {
        let shot = screenshots.join(name);
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} missing or empty", shot.display());
    }
}
