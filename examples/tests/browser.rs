//! The web chat page in a real headless Chromium: `examples/tests/web/chat.test.mjs`, run by
//! Node with `playwright-core` against the server binary on loopback ports, the model a
//! `FakeBedrock` this test controls.
//!
//! Four servers: the main one (SQLite file, `FakeBedrock`), one with a limit of two
//! requests a minute (for the over-the-limit message), one with API keys (for the token
//! field) and one whose model reasons and cites documents (a Claude model id,
//! `--reasoning-budget`, `--citations`). The Node
//! script asks for model faults on its stdout (`@fault mid-stream`, `@model-unavailable`,
//! `@slow-reply`) and waits for `ok` on its stdin, so each fault lands on the send it is
//! meant for (`@check` answers `ok` once every scripted answer has been used).
//!
//! The tool calls on the page have a test of their own (`cargo test --test browser --
//! tool`), which runs only the script's `tool calls` tests, against two servers with
//! `--tool current_time`: the offline model, and `FakeBedrock` scripted to call the tool
//! twice, once with input the tool refuses (`@tool-rounds`). The two tests take turns with
//! the browser.
//!
//! Needs Node.js, `npm ci` run in `examples/tests/web/` and Debian's `chromium`:
//! `scripts/test` sees to all three and turns on the `browser-tests` feature.
#![cfg(all(unix, feature = "browser-tests", feature = "fake-bedrock"))]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bedrock_chat_core::testkit::{FakeBedrock, FakeReply, Fault, Timing};
use serde_json::json;
use support::{aws_env, Scratch, Server, FAKE_MODEL};

/// The longest the whole browser run may take.
const RUN_LIMIT: Duration = Duration::from_secs(600);
/// The API key of the key-protected server, and its user.
const API_KEY: &str = "browser-test-key-0123456789";
/// A model that `FakeBedrock` answers with reasoning when thinking is asked for.
const REASONING_MODEL: &str = "bedrock:us.anthropic.claude-sonnet-4-20250514-v1:0";

/// One browser run at a time: two at once would share the machine's cores and slow the
/// timing-sensitive tests.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_works_in_headless_chromium() {
    let chromium = chromium();
    let _turn = BROWSER.lock().await;
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
            "--citations",
            "--store",
            "sqlite:reasoning.db",
            "--rate-limit",
            "1000/min",
        ],
        &env,
    )
    .await;

    let node_env = [
        ("CHAT_URL", main.url("")),
        ("LIMITED_URL", limited.url("")),
        ("KEYED_URL", keyed.url("")),
        ("REASONING_URL", reasoning.url("")),
        ("API_KEY", API_KEY.to_owned()),
    ];
    let control = move |command: &str| {
        match command {
            "fault mid-stream" => fake.push_fault(Fault::exception_after(
                3,
                "modelStreamErrorException",
                "the model broke off",
            )),
            // Bedrock answering 503 to every attempt the SDK makes (three).
            "model-unavailable" => {
                for _ in 0..3 {
                    fake.push_fault(Fault::service_unavailable());
                }
            }
            "check" => return checked(&fake),
            "slow-reply" => {
                let pieces: Vec<String> = (0..60).map(|i| format!("slow{i} ")).collect();
                fake.push_reply(
                    FakeReply::text("")
                        .with_deltas(pieces)
                        .with_delta_delay(Duration::from_millis(100)),
                );
            }
            other => return format!("unknown command {other}"),
        }
        "ok".to_owned()
    };
    run_node(
        &chromium,
        None,
        &node_env,
        control,
        &mut [main, limited, keyed, reasoning],
    );
    expect_screenshots(&[
        "desktop.png",
        "phone.png",
        "reasoning.png",
        "reasoning-dark.png",
        "citations.png",
        "citations-dark.png",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_show_on_the_chat_page_in_headless_chromium() {
    let chromium = chromium();
    let _turn = BROWSER.lock().await;
    let fake = FakeBedrock::start().await.unwrap();
    fake.accept_any_model();
    let env = aws_env(&fake);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let dir = Scratch::new("browser-tools");
    let tool = ["--tool", "current_time", "--rate-limit", "1000/min"];
    let offline = Server::start(
        dir.path(),
        &[
            &tool[..],
            &["--model", "offline", "--store", "sqlite:tools.db"],
        ]
        .concat(),
        &[],
    )
    .await;
    let scripted = Server::start(
        dir.path(),
        &[
            &tool[..],
            &["--model", FAKE_MODEL, "--store", "sqlite:fake.db"],
        ]
        .concat(),
        &env,
    )
    .await;

    let node_env = [
        ("CHAT_URL", offline.url("")),
        ("TOOLS_URL", offline.url("")),
        ("FAKE_TOOLS_URL", scripted.url("")),
    ];
    let control = move |command: &str| {
        match command {
            // Three rounds: the clock two hours east, the clock at an offset it refuses,
            // then an answer that reasons first.
            "tool-rounds" => {
                for offset in ["+02:00", "+99:00"] {
                    fake.push_reply(FakeReply::tool_use_named(
                        "current_time",
                        json!({ "utc_offset": offset }),
                    ));
                }
                fake.push_reply(
                    FakeReply::text("One clock answered, the other did not.")
                        .with_reasoning("The second offset was out of range."),
                );
            }
            "check" => return checked(&fake),
            other => return format!("unknown command {other}"),
        }
        "ok".to_owned()
    };
    run_node(
        &chromium,
        Some("^tool calls"),
        &node_env,
        control,
        &mut [offline, scripted],
    );
    expect_screenshots(&[
        "tools-running.png",
        "tools.png",
        "tools-dark.png",
        "tools-phone.png",
        "tools-failed.png",
        "tools-failed-dark.png",
        "tools-failed-phone.png",
    ]);
}

/// The Chromium to drive, once `playwright-core` is known to be installed.
fn chromium() -> String {
    let playwright = web_dir().join("node_modules/playwright-core");
    assert!(
        playwright.is_dir(),
        "playwright-core is not installed: run `npm ci` in {} (scripts/test does)",
        web_dir().display()
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "no Chromium at {chromium}: install Debian's `chromium` (scripts/test does) or set CHROMIUM"
    );
    chromium
}

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web")
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("browser-screenshots")
}

/// `ok` once every scripted answer has been used by the send it was meant for.
fn checked(fake: &FakeBedrock) -> String {
    match fake.pending() {
        0 => "ok".to_owned(),
        n => format!("{n} scripted answers left unused"),
    }
}

/// Runs `chat.test.mjs` in `chromium` with `env` (only the tests whose names match
/// `pattern`, when given), answering each `@COMMAND` line it prints on its stdin with what
/// `control` returns; fails, with the servers' logs, unless every test it ran passed.
fn run_node(
    chromium: &str,
    pattern: Option<&str>,
    env: &[(&str, String)],
    mut control: impl FnMut(&str) -> String + Send + 'static,
    servers: &mut [Server],
) {
    let screenshots = screenshot_dir();
    std::fs::create_dir_all(&screenshots).unwrap();
    let mut node = Command::new("node");
    if let Some(pattern) = pattern {
        node.arg(format!("--test-name-pattern={pattern}"));
    }
    let mut node = node
        .arg(web_dir().join("chat.test.mjs"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("CHROMIUM", chromium)
        .env("SCREENSHOT_DIR", &screenshots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start node (is Node.js installed?): {e}"));

    // The script's commands, answered on its stdin; the rest is its report.
    let stdout = node.stdout.take().unwrap();
    let mut stdin = node.stdin.take().unwrap();
    let pid = node.id();
    let reader = std::thread::spawn(move || {
        let mut report = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Some(command) = line.strip_prefix('@') else {
                println!("{line}");
                report.push_str(&line);
                report.push('\n');
                continue;
            };
            if writeln!(stdin, "{}", control(command)).is_err() {
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
}

/// Fails unless each of the screenshots `names` was taken.
fn expect_screenshots(names: &[&str]) {
    for name in names {
        let shot = screenshot_dir().join(name);
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} missing or empty", shot.display());
    }
}
