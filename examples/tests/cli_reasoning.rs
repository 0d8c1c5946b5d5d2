//! The CLI's reasoning as its users see it: `target/<profile>/examples/cli` on its default
//! SQLite store in a scratch directory, the offline model (which reasons briefly, "Reasoning
//! (offline model): …", when given a budget); `ask` as a child process with pipes, the
//! interactive chat in a real pseudo-terminal (expectrl).
//!
//! A run narrowed to this file does not build the examples: `cargo build --workspace
//! --all-features --examples && cargo test --workspace --all-features --test cli_reasoning`.
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

mod support;
use support::{cli, Scratch};

/// How the offline model's reasoning starts.
const REASONING: &str = "Reasoning (offline model): the question is";

fn conversation_count(dir: &Path) -> usize {
    let run = cli(dir, &["history", "list", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str::<Value>(&run.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn ask_prints_the_reasoning_plainly_on_stderr_and_the_answer_alone_on_stdout() {
    let dir = Scratch::new("ask-reasoning");
    let run = cli(
        dir.path(),
        &["ask", "--reasoning-budget", "2048", "Why is the sea salty?"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "the answer alone: {run:?}");
    assert!(
        run.stdout.contains("answering: \"Why is the sea salty?\""),
        "{run:?}"
    );
    assert!(!run.stdout.contains("Reasoning"), "{run:?}");
    assert!(
        run.stderr
            .starts_with(&format!("thinking: {REASONING} \"Why is the sea salty?\"")),
        "{run:?}"
    );
    assert!(run.stderr.ends_with("\n\n"), "set apart: {run:?}");
    assert!(
        !run.stderr.contains('\x1b'),
        "no colours off a terminal: {run:?}"
    );

    // Stored with the answer: `history show` prints it before the answer.
    let list = cli(dir.path(), &["history", "list", "--json"]);
    let chats: Value = serde_json::from_str(&list.stdout).unwrap();
    let id = chats[0]["id"].as_str().unwrap();
    let show = cli(dir.path(), &["history", "show", id]);
    assert_eq!(show.code, 0, "{show:?}");
    let thinking = show.stdout.find("thinking: Reasoning (offline model)");
    let answer = show.stdout.rfind("answering: \"Why is the sea salty?\"");
    assert!(
        thinking.is_some() && thinking < answer,
        "the reasoning, then the answer: {show:?}"
    );
}

#[test]
fn ask_json_carries_the_reasoning_only_when_there_is_some() {
    let dir = Scratch::new("ask-reasoning-json");
    let run = cli(
        dir.path(),
        &["ask", "--json", "--reasoning-budget", "1024", "Think first"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stderr, "", "the reasoning is in the JSON: {run:?}");
    let reply: Value = serde_json::from_str(&run.stdout).unwrap();
    let reasoning = reply["reasoning"].as_str().unwrap();
    assert!(reasoning.starts_with(REASONING), "{reply}");
    assert_eq!(reply["answer"]["parts"][0]["type"], "reasoning", "{reply}");

    let plain = cli(dir.path(), &["ask", "--json", "No thinking"]);
    assert_eq!(plain.code, 0, "{plain:?}");
    let reply: Value = serde_json::from_str(&plain.stdout).unwrap();
    assert!(reply.get("reasoning").is_none(), "{reply}");
    assert!(reply["answer"].get("parts").is_none(), "{reply}");
}

#[test]
fn a_bad_reasoning_budget_exits_2_naming_the_flag_and_stores_nothing() {
    let dir = Scratch::new("ask-reasoning-bad");
    for args in [
        &["ask", "--reasoning-budget", "1000", "hi"][..],
        &[
            "ask",
            "--reasoning-budget",
            "4096",
            "--max-tokens",
            "4096",
            "hi",
        ],
        &[
            "ask",
            "--reasoning-budget",
            "2048",
            "--temperature",
            "0.5",
            "hi",
        ],
        &["ask", "--reasoning-budget", "lots", "hi"],
    ] {
        let run = cli(dir.path(), args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert_eq!(run.stdout, "", "{run:?}");
        assert!(run.stderr.contains("--reasoning-budget"), "{run:?}");
    }
    assert_eq!(conversation_count(dir.path()), 0);
}

mod terminal {
    //! The interactive chat in a real pseudo-terminal.

    use expectrl::{ControlCode, Expect, Session};

    use super::*;

    const PROMPT: &str = "you ›";

    fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> expectrl::session::OsSession {
        let mut command = support::program("cli", dir, args, env);
        command.env("TERM", "xterm");
        let mut session = Session::spawn(command).unwrap();
        session.set_expect_timeout(Some(Duration::from_secs(30)));
        session.get_process_mut().set_window_size(200, 50).unwrap();
        session
    }

    fn say(session: &mut expectrl::session::OsSession, line: &str) {
        session.expect(PROMPT).unwrap();
        session.send_line(line).unwrap();
    }

    fn leave(session: &mut expectrl::session::OsSession) {
        session.expect(PROMPT).unwrap();
        session.send(ControlCode::EndOfTransmission).unwrap();
        session.expect(expectrl::Eof).unwrap();
        let status = session.get_process().wait().unwrap();
        assert_eq!(
            status,
            expectrl::process::unix::WaitStatus::Exited(session.get_process().pid(), 0)
        );
    }

    #[test]
    fn the_chat_shows_reasoning_dimmed_before_the_answer_and_reasoning_turns_it_off() {
        let dir = Scratch::new("repl-reasoning");
        let mut s = spawn(
            dir.path(),
            &["--color", "auto", "--reasoning-budget", "2048"],
            &[],
        );
        say(&mut s, "Why is the sky blue?");
        // Dimmed: the heading, then the reasoning as it streams, then the answer.
        s.expect("\x1b[2mthinking: \x1b[0m\x1b[2mReasoning (offline model): \x1b[0m")
            .unwrap();
        let answer = s.expect("answering: \"Why is the sky blue?\"").unwrap();
        // The terminal writes each newline as \r\n.
        let before = String::from_utf8_lossy(answer.before()).replace('\r', "");
        assert!(
            before.contains("\x1b[0m\n\nThis is the offline model"),
            "a blank line between the reasoning and the answer: {before:?}"
        );

        say(&mut s, "/reasoning 100");
        s.expect("/reasoning: 100 is under 1024").unwrap();
        say(&mut s, "/reasoning off");
        s.expect("reasoning: off").unwrap();
        say(&mut s, "No reasoning now");
        let answer = s.expect("answering: \"No reasoning now\"").unwrap();
        assert!(
            !String::from_utf8_lossy(answer.before()).contains("thinking"),
            "no reasoning once off"
        );
        say(&mut s, "/reasoning 1024");
        s.expect("reasoning: up to 1024 tokens").unwrap();
        say(&mut s, "Back on");
        s.expect("thinking: ").unwrap();
        s.expect("answering: \"Back on\"").unwrap();
        leave(&mut s);
    }

    #[test]
    fn with_no_color_the_reasoning_is_plain_text() {
        let dir = Scratch::new("repl-reasoning-plain");
        let mut s = spawn(
            dir.path(),
            &["--color", "auto", "--reasoning-budget", "2048"],
            &[("NO_COLOR", "1")],
        );
        say(&mut s, "Plain please");
        let answer = s.expect("answering: \"Plain please\"").unwrap();
        let before = String::from_utf8_lossy(answer.before()).into_owned();
        let at = before
            .find("thinking: Reasoning (offline model): the question is")
            .unwrap();
        assert!(!before[at..].contains('\x1b'), "no escapes: {before:?}");
        leave(&mut s);
    }
}
