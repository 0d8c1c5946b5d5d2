//! The CLI's tools as its users see them: `target/<profile>/examples/cli` on its default
//! SQLite store in a scratch directory, `--tool current_time`, the offline model (which
//! calls a tool whose name the question mentions); `ask` as a child process with pipes.
//!
//! A run narrowed to this file does not build the examples: `cargo build --workspace
//! --all-features --examples && cargo test --workspace --all-features --test cli_tools`.
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use serde_json::Value;

mod support;
use support::{cli, Scratch};

const QUESTION: &str = "What is the current time?";

#[test]
fn ask_shows_the_tool_call_on_stderr_and_the_answer_alone_on_stdout() {
    let dir = Scratch::new("ask-tool");
    let run = cli(dir.path(), &["ask", "--tool", "current_time", QUESTION]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "the answer alone: {run:?}");
    assert!(
        run.stdout.contains("what the tools returned: {\"now\":"),
        "{run:?}"
    );
    assert!(
        run.stderr.starts_with("tool: current_time {} → {\"now\":"),
        "{run:?}"
    );
    assert!(
        !run.stderr.contains('\x1b'),
        "no colours off a terminal: {run:?}"
    );

    // Stored with the answer: `history show` prints the call before the answer.
    let list = cli(dir.path(), &["history", "list", "--json"]);
    let chats: Value = serde_json::from_str(&list.stdout).unwrap();
    let show = cli(
        dir.path(),
        &["history", "show", chats[0]["id"].as_str().unwrap()],
    );
    assert_eq!(show.code, 0, "{show:?}");
    let call = show.stdout.find("tool: current_time {} → {\"now\":");
    let answer = show.stdout.rfind("what the tools returned");
    assert!(call.is_some() && call < answer, "{show:?}");
}

#[test]
fn ask_json_carries_the_calls_and_results_as_parts() {
    let dir = Scratch::new("ask-tool-json");
    let run = cli(
        dir.path(),
        &["ask", "--json", "--tool", "current_time", QUESTION],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stderr, "", "{run:?}");
    let reply: Value = serde_json::from_str(&run.stdout).unwrap();
    let types: Vec<&str> = reply["answer"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["tool_use", "tool_result", "text"], "{reply}");
}

#[test]
fn without_the_flag_the_model_gets_no_tool() {
    let dir = Scratch::new("ask-no-tool");
    let run = cli(dir.path(), &["ask", QUESTION]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stderr, "", "{run:?}");
    assert!(
        run.stdout
            .contains("answering: \"What is the current time?\""),
        "{run:?}"
    );
}

#[test]
fn an_unknown_tool_exits_2_naming_the_choices() {
    let dir = Scratch::new("ask-bad-tool");
    let run = cli(dir.path(), &["ask", "--tool", "shell", "hi"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("current_time"), "{run:?}");
}
