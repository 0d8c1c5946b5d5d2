//! The CLI's attachments as its users run them: `target/<profile>/examples/cli` as a child
//! process on its default SQLite store in a scratch directory, the offline model.
//!
//! A run narrowed to this file does not build the examples: `cargo build --workspace
//! --all-features --examples && cargo test --workspace --all-features --test cli_attachments`.
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

mod support;
use support::{cli, Scratch};

/// A 1x1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
const NOTES: &str = "# Notes\n\nWe met; we agreed.\n";

fn conversations(dir: &Path) -> Vec<Value> {
    let run = cli(dir, &["history", "list", "--json", "--user", "ada"]);
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str::<Value>(&run.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn ask_attaches_a_png_and_a_markdown_file_and_history_shows_them() {
    let dir = Scratch::new("cli-attach");
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG)
        .unwrap();
    std::fs::write(dir.path().join("photo.png"), &png).unwrap();
    std::fs::write(dir.path().join("meeting notes.md"), NOTES).unwrap();
    let run = cli(
        dir.path(),
        &[
            "ask",
            "--user",
            "ada",
            "--json",
            "--attach",
            "photo.png",
            "--attach",
            "meeting notes.md",
            "What are these?",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let reply: Value = serde_json::from_str(&run.stdout).unwrap();
    let chat_id = reply["chat_id"].as_str().unwrap();

    let shown = cli(dir.path(), &["history", "show", chat_id, "--user", "ada"]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(shown.stdout.contains("What are these?"), "{shown:?}");
    assert!(
        shown
            .stdout
            .contains(&format!("[attached: image (png, {} bytes)]", png.len())),
        "{shown:?}"
    );
    assert!(
        shown.stdout.contains(&format!(
            "[attached: document “meeting notes” (md, {} bytes)]",
            NOTES.len()
        )),
        "{shown:?}"
    );

    // The JSON export lists them as the API does, without their bytes.
    let export = cli(
        dir.path(),
        &[
            "history", "export", chat_id, "--format", "json", "--user", "ada",
        ],
    );
    assert_eq!(export.code, 0, "{export:?}");
    let export: Value = serde_json::from_str(&export.stdout).unwrap();
    let parts = &export["messages"][0]["parts"];
    assert_eq!(parts[0]["type"], "image");
    assert_eq!(parts[0]["format"], "png");
    assert_eq!(parts[0]["size"], png.len());
    assert_eq!(parts[1]["type"], "document");
    assert_eq!(parts[1]["name"], "meeting notes");
    assert!(!export.to_string().contains(PNG), "no bytes in the export");
}

#[test]
fn a_file_that_cannot_be_attached_exits_2_and_sends_nothing() {
    let dir = Scratch::new("cli-attach-bad");
    std::fs::write(dir.path().join("song.mp3"), b"ID3").unwrap();
    for (file, says) in [("song.mp3", "extension"), ("missing.png", "cannot read")] {
        let run = cli(
            dir.path(),
            &["ask", "--user", "ada", "--attach", file, "Listen"],
        );
        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        assert!(
            run.stderr.contains(file) && run.stderr.contains(says),
            "{run:?}"
        );
    }
    // Bytes that are not the format the extension says: the library's 415, a bad input.
    std::fs::write(dir.path().join("fake.png"), b"not a png at all").unwrap();
    let run = cli(
        dir.path(),
        &["ask", "--user", "ada", "--attach", "fake.png", "Look"],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("attachments[0]"), "{run:?}");
    assert!(conversations(dir.path()).is_empty());
}

#[test]
fn help_documents_attach() {
    let dir = Scratch::new("cli-attach-help");
    let run = cli(dir.path(), &["ask", "--help"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("--attach <FILE>"), "{run:?}");
    assert!(run.stdout.contains("xlsx"), "{run:?}");
}

#[cfg(feature = "fake-bedrock")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_citations_ask_lists_the_sources_after_the_answer_and_history_shows_them() {
    // A Claude model on FakeBedrock, which cites the document it is sent with citations on.
    let fake = bedrock_chat_core::testkit::FakeBedrock::start()
        .await
        .unwrap();
    let env = support::aws_env(&fake);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let model = "bedrock:us.anthropic.claude-sonnet-4-20250514-v1:0";
    let dir = Scratch::new("cli-cite");
    std::fs::write(
        dir.path().join("policy.txt"),
        "Leave is 20 days a year.\nMore.\n",
    )
    .unwrap();
    let ask = |extra: &[&str]| {
        let args = [
            &["ask", "--user", "ada", "--model", model, "--citations"][..],
            &["--attach", "policy.txt"][..],
            extra,
            &["How much leave?"][..],
        ]
        .concat();
        support::cli_with_env(dir.path(), &args, &env)
    };
    let run = ask(&[]);
    assert_eq!(run.code, 0, "{run:?}");
    let sent = fake.last_request().unwrap().body;
    assert_eq!(
        sent["messages"][0]["content"][0]["document"]["citations"],
        serde_json::json!({"enabled": true}),
        "{sent}"
    );
    // The answer alone on stdout; its source on stderr, after it.
    assert!(
        run.stdout
            .trim_end()
            .ends_with("The document “policy” says: Leave is 20 days a year."),
        "{run:?}"
    );
    let source = "[1] “Leave is 20 days a year.” ← “Leave is 20 days a year.” (policy, \
                  characters 0–24)";
    assert_eq!(run.stderr.lines().next(), Some(source), "{run:?}");
    assert!(!run.stdout.contains("[1]"), "{run:?}");

    // `--json` keeps the citation with the answer's text part.
    let run = ask(&["--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let reply: Value = serde_json::from_str(&run.stdout).unwrap();
    let citation = &reply["answer"]["parts"][0]["citations"][0];
    assert_eq!(citation["quote"], "Leave is 20 days a year.", "{reply}");
    assert_eq!(citation["title"], "policy");

    let chat_id = reply["chat_id"].as_str().unwrap();
    let shown = cli(dir.path(), &["history", "show", chat_id, "--user", "ada"]);
    assert_eq!(shown.code, 0, "{shown:?}");
    let lines: Vec<&str> = shown.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with("The document “policy” says: Leave is 20 days a year."))
        .expect("the answer");
    assert_eq!(lines.get(at + 1), Some(&source), "{shown:?}");
}
