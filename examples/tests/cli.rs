//! The CLI binary as its users run it: `target/<profile>/examples/cli` as a child process,
//! its stdout, stderr and exit code checked for each outcome a script branches on; the
//! interactive chat in a real pseudo-terminal (expectrl); and a conversation started in
//! the CLI read back through the server binary on the same SQLite file.
//!
//! `cargo test` builds the examples before it runs the tests; a run narrowed to this file
//! does not, so build them first: `cargo build --workspace --all-features --example cli
//! --example server && cargo test --workspace --all-features --test cli`.
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod support;
use support::{Scratch, EXIT};

/// The CLI in `dir` (its default store `sqlite:bedrock-chat.db` lands there; it is `$HOME`
/// too, so the line history file does), with a clean environment plus `env`.
fn command(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    support::program("cli", dir, args, &env)
}

/// What a finished run left.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
}

/// Runs the CLI in `dir` to its exit, with `stdin` as its input (empty when `None`).
fn cli_with(dir: &Path, args: &[&str], env: &[(&str, String)], stdin: Option<&str>) -> Run {
    let mut child = command(dir, args, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let output = support::output_within(child, EXIT, &format!("the CLI with {args:?}"));
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn cli(dir: &Path, args: &[&str]) -> Run {
    cli_with(dir, args, &[], None)
}

/// The ids of the user's conversations, newest first, from `history list --json`.
fn chat_ids(dir: &Path, user: &str) -> Vec<String> {
    cli(dir, &["history", "list", "--json", "--user", user])
        .assert_ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn ask_prints_the_answer_alone_on_stdout_and_keeps_it_in_the_default_store() {
    let dir = Scratch::new("ask");
    let run = cli(dir.path(), &["ask", "What is a borrow checker?"]);
    run.assert_ok();
    assert_eq!(
        run.stdout.lines().count(),
        1,
        "the answer, and nothing else: {run:?}"
    );
    assert!(
        run.stdout
            .contains("answering: \"What is a borrow checker?\""),
        "{run:?}"
    );
    assert_eq!(
        run.stderr, "",
        "no chatter on stderr when it is not a terminal"
    );
    assert!(
        dir.path().join("bedrock-chat.db").is_file(),
        "the server's default store"
    );

    // The user defaults to $USER.
    let list = cli(dir.path(), &["history", "list", "--user", "tester"]);
    list.assert_ok();
    assert!(
        list.stdout.contains("What is a borrow checker?"),
        "{list:?}"
    );
    assert!(list.stdout.contains("2 msgs"), "{list:?}");
    assert_eq!(chat_ids(dir.path(), "somebody-else"), Vec::<String>::new());
}

#[test]
fn ask_reads_stdin_gives_the_reply_as_json_and_continues_a_chat() {
    let dir = Scratch::new("json");
    let first = cli_with(
        dir.path(),
        &["ask", "--json", "--system", "Answer in French."],
        &[],
        Some("first question\n"),
    );
    first.assert_ok();
    let reply = first.json();
    assert_eq!(reply["question"]["content"], "first question");
    assert_eq!(reply["answer"]["role"], "assistant");
    assert_eq!(reply["new_conversation"], true);
    assert!(reply["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let chat_id = reply["chat_id"].as_str().unwrap().to_owned();

    let second = cli(
        dir.path(),
        &["ask", "--json", "--chat", &chat_id, "second question"],
    );
    second.assert_ok();
    let reply = second.json();
    assert_eq!(reply["chat_id"], chat_id.as_str());
    assert_eq!(reply["answer"]["seq"], 4);
    let text = reply["answer"]["content"].as_str().unwrap();
    assert!(text.contains("I can see 2 earlier messages"), "{text}");
    assert!(text.contains("I was given a system prompt"), "{text}");
}

#[test]
fn an_empty_question_exits_2_with_nothing_on_stdout_and_nothing_stored() {
    let dir = Scratch::new("empty");
    let run = cli(dir.path(), &["ask", "   "]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(run.stderr.starts_with("error: "), "{run:?}");
    assert!(run.stderr.contains("message"), "names the field: {run:?}");

    let run = cli_with(dir.path(), &["ask"], &[], Some(""));
    assert_eq!(run.code, 2, "an empty stdin: {run:?}");
    assert_eq!(chat_ids(dir.path(), "tester"), Vec::<String>::new());
}

#[test]
fn a_malformed_or_unknown_conversation_id_exits_2() {
    let dir = Scratch::new("ids");
    let run = cli(dir.path(), &["ask", "--chat", "not-an-id", "hello"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--chat"), "{run:?}");

    let unknown = uuid::Uuid::now_v7().to_string();
    let run = cli(dir.path(), &["ask", "--chat", &unknown, "hello"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("conversation not found"), "{run:?}");
    let run = cli(dir.path(), &["history", "show", &unknown]);
    assert_eq!(run.code, 2, "{run:?}");
}

#[test]
fn a_store_that_cannot_be_reached_exits_5_and_a_bad_store_url_2() {
    let dir = Scratch::new("store");
    let missing = dir.path().join("no-such-dir").join("chat.db");
    let url = format!("sqlite:{}", missing.display());
    let run = cli(dir.path(), &["--store", &url, "ask", "hello"]);
    assert_eq!(run.code, 5, "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("--store"), "names the flag: {run:?}");

    // Flags may follow the command.
    let run = cli(dir.path(), &["history", "list", "--store", &url]);
    assert_eq!(run.code, 5, "{run:?}");

    let run = cli(dir.path(), &["ask", "--store", "nosuch://x", "hello"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--store nosuch://x"), "{run:?}");
}

#[test]
fn history_shows_exports_and_deletes_a_conversation() {
    let dir = Scratch::new("history");
    cli(dir.path(), &["ask", "Tell me about *Markdown*"]).assert_ok();
    let ids = chat_ids(dir.path(), "tester");
    assert_eq!(ids.len(), 1);
    let id = ids[0].as_str();

    let show = cli(dir.path(), &["history", "show", id]);
    show.assert_ok();
    assert!(show.stdout.contains(id), "{show:?}");
    assert!(show.stdout.contains("2 messages"), "{show:?}");
    assert!(
        show.stdout.contains("\nyou · "),
        "the question under its author: {show:?}"
    );
    assert!(
        show.stdout.contains("Tell me about *Markdown*"),
        "Markdown left as text: {show:?}"
    );
    assert!(!show.stdout.contains('\x1b'), "no colours off a terminal");

    let json = cli(dir.path(), &["history", "export", id, "--format", "json"]);
    let export = json.assert_ok().json();
    assert_eq!(export["conversation"]["id"], id);
    assert_eq!(export["messages"].as_array().unwrap().len(), 2);

    let markdown = cli(dir.path(), &["history", "export", id]);
    markdown.assert_ok();
    assert!(
        markdown.stdout.starts_with("# Tell me about *Markdown*"),
        "{markdown:?}"
    );
    let file = dir.path().join("chat.md");
    let run = cli(
        dir.path(),
        &[
            "history",
            "export",
            id,
            "-f",
            "markdown",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    run.assert_ok();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), markdown.stdout);

    let delete = cli(dir.path(), &["history", "delete", id]);
    delete.assert_ok();
    assert_eq!(delete.stdout, "");
    assert_eq!(chat_ids(dir.path(), "tester"), Vec::<String>::new());
    let again = cli(dir.path(), &["history", "delete", id]);
    assert_eq!(again.code, 2, "already gone: {again:?}");
}

#[test]
fn persona_prints_the_persona_and_a_conversation_held_with_it() {
    let dir = Scratch::new("persona");
    let run = cli(
        dir.path(),
        &[
            "persona",
            "--json",
            "A patient chess coach who loves endgames",
        ],
    );
    run.assert_ok();
    let made = run.json();
    let name = made["persona"]["name"].as_str().unwrap();
    assert!(!name.is_empty());
    assert!(!made["persona"]["system_prompt"]
        .as_str()
        .unwrap()
        .is_empty());
    let chat_id = made["chat_id"].as_str().unwrap();
    assert_eq!(chat_ids(dir.path(), "tester"), vec![chat_id.to_owned()]);

    let show = cli(dir.path(), &["history", "show", chat_id]);
    show.assert_ok();
    assert!(
        show.stdout.starts_with(name),
        "titled with its name: {show:?}"
    );
    assert!(show.stdout.contains("system: "), "{show:?}");

    let text = cli(dir.path(), &["persona", "A stern librarian"]);
    text.assert_ok();
    assert!(text.stdout.contains("system prompt:"), "{text:?}");
    assert!(text.stdout.contains("chat: "), "{text:?}");
}

#[test]
fn help_documents_the_commands_and_the_exit_codes() {
    let dir = Scratch::new("help");
    for args in [&["--help"][..], &["ask", "--help"][..]] {
        let run = cli(dir.path(), args);
        run.assert_ok();
        for code in [
            "0  success",
            "2  bad input",
            "3  rate limited",
            "4  the model failed",
            "5  the store",
        ] {
            assert!(run.stdout.contains(code), "{args:?} lacks {code:?}");
        }
    }
    let run = cli(dir.path(), &["--help"]);
    for word in [
        "chat",
        "ask",
        "history",
        "persona",
        "--store",
        "--limiter",
        "--model",
        "--user",
    ] {
        assert!(run.stdout.contains(word), "--help lacks {word}");
    }
}

#[cfg(feature = "fake-bedrock")]
mod fake_bedrock {
    //! Through a `FakeBedrock` on loopback, as the AWS SDK finds it: by
    //! `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`.

    use bedrock_chat_core::testkit::{FakeBedrock, FakeReply, Fault};

    use super::*;
    use crate::support::{aws_env, FAKE_MODEL as MODEL};

    /// `ask QUESTION` against `fake`, run off the runtime's threads (the fake serves on
    /// them).
    async fn ask(dir: &Path, fake: &FakeBedrock, question: &str) -> Run {
        let env = aws_env(fake);
        let dir = dir.to_owned();
        let question = question.to_owned();
        tokio::task::spawn_blocking(move || {
            cli_with(&dir, &["--model", MODEL, "ask", &question], &env, None)
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bedrock_answer_is_printed_whole() {
        let fake = FakeBedrock::start().await.unwrap();
        fake.push_reply(FakeReply::text("").with_deltas(["Four", " is", " the answer."]));
        let dir = Scratch::new("bedrock");
        let run = ask(dir.path(), &fake, "What is 2+2?").await;
        run.assert_ok();
        assert_eq!(run.stdout, "Four is the answer.\n");
        assert_eq!(fake.request_count(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_model_error_exits_4_and_stores_nothing() {
        let fake = FakeBedrock::start().await.unwrap();
        fake.push_fault(Fault::model_error());
        let dir = Scratch::new("model-error");
        let run = ask(dir.path(), &fake, "hello").await;
        assert_eq!(run.code, 4, "{run:?}");
        assert_eq!(run.stdout, "");
        assert!(run.stderr.contains("error: the model failed"), "{run:?}");
        assert_eq!(chat_ids(dir.path(), "tester"), Vec::<String>::new());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_that_breaks_off_exits_4_with_no_half_answer_on_stdout() {
        let fake = FakeBedrock::start().await.unwrap();
        fake.push_fault(Fault::exception_after(
            2,
            "modelStreamErrorException",
            "the model broke off",
        ));
        let dir = Scratch::new("broken");
        let run = ask(dir.path(), &fake, "one two three four five six").await;
        assert_eq!(run.code, 4, "{run:?}");
        assert_eq!(run.stdout, "", "a pipe gets the whole answer or nothing");
        assert_eq!(chat_ids(dir.path(), "tester"), Vec::<String>::new());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_throttling_model_exits_3() {
        let fake = FakeBedrock::start().await.unwrap();
        // More than the model's retries.
        fake.throttle_next(10);
        let dir = Scratch::new("throttled");
        let run = ask(dir.path(), &fake, "hello").await;
        assert_eq!(run.code, 3, "{run:?}");
        assert_eq!(run.stdout, "");
        assert!(run.stderr.contains("throttl"), "{run:?}");
    }
}

#[cfg(feature = "service-tests")]
#[test]
fn over_a_shared_redis_rate_limit_ask_exits_3() {
    use bedrock_chat_core::conformance::{service_url, unique_prefix};

    let redis = service_url("BEDROCK_CHAT_TEST_REDIS_URL");
    // This run's keys, which scripts/test deletes afterwards.
    let separator = if redis.contains('?') { '&' } else { '?' };
    let redis = format!("{redis}{separator}prefix={}", unique_prefix());
    let dir = Scratch::new("limited");
    let user = "limited".to_owned();
    let args = |question: &'static str| {
        vec![
            "--limiter".to_owned(),
            redis.clone(),
            "--rate-limit".to_owned(),
            "1/min".to_owned(),
            "--user".to_owned(),
            user.clone(),
            "ask".to_owned(),
            question.to_owned(),
        ]
    };
    let first = args("first");
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    cli(dir.path(), &first).assert_ok();
    let second = args("second");
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    let run = cli(dir.path(), &second);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("rate limit exceeded"), "{run:?}");
}

mod terminal {
    //! The interactive chat in a real pseudo-terminal.

    use expectrl::{ControlCode, Expect, Regex, Session};

    use super::*;

    /// The prompt, as the line editor draws it.
    const PROMPT: &str = "you ›";

    /// A chat session in a pseudo-terminal, in `dir`.
    fn spawn(dir: &Path, args: &[&str], env: &[(&str, String)]) -> expectrl::session::OsSession {
        // Plain text to match, unless the test is about colours.
        let mut all = if args.contains(&"--color") {
            vec![]
        } else {
            vec!["--color", "never"]
        };
        all.extend_from_slice(args);
        let mut command = command(dir, &all, env);
        command.env("TERM", "xterm");
        let mut session = Session::spawn(command).unwrap();
        session.set_expect_timeout(Some(Duration::from_secs(30)));
        session.get_process_mut().set_window_size(200, 50).unwrap();
        session
    }

    /// Types `line` once the prompt is up, then presses Enter.
    fn say(session: &mut expectrl::session::OsSession, line: &str) {
        session.expect(PROMPT).unwrap();
        session.send_line(line).unwrap();
    }

    /// Ctrl-D at the prompt; the process exits 0.
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
    fn the_chat_streams_answers_and_runs_the_slash_commands() {
        let dir = Scratch::new("repl");
        let mut s = spawn(dir.path(), &[], &[]);
        s.expect("bedrock-chat").unwrap();
        s.expect("user tester").unwrap();

        say(&mut s, "Hello from a terminal");
        s.expect("answering: \"Hello from a terminal\"").unwrap();
        s.expect(Regex("new conversation [0-9a-f-]{36}")).unwrap();

        say(&mut s, "/rename Terminal talk");
        s.expect("renamed to “Terminal talk”").unwrap();
        say(&mut s, "/list");
        s.expect(Regex(r" 1  Terminal talk\s+\w{3} \d\d \d\d:\d\d\s+2 msgs"))
            .unwrap();
        say(&mut s, "/system Answer briefly.");
        s.expect("system prompt set").unwrap();
        say(&mut s, "/system");
        s.expect("Answer briefly.").unwrap();
        say(&mut s, "And again");
        s.expect("I can see 2 earlier messages").unwrap();
        say(&mut s, "/export markdown");
        s.expect("# Terminal talk").unwrap();
        let file = dir.path().join("talk.json");
        say(&mut s, &format!("/export json {}", file.display()));
        s.expect("wrote ").unwrap();
        say(&mut s, "/export json /no-such-dir/talk.json");
        s.expect("error: /no-such-dir/talk.json: ").unwrap();
        say(&mut s, "/usage");
        s.expect(Regex(r"all time\s+\d+ tokens")).unwrap();
        s.expect("1 conversation, 4 messages").unwrap();

        say(&mut s, "/persona A cheerful gardener");
        s.expect(Regex("new conversation [0-9a-f-]{36} with "))
            .unwrap();
        say(&mut s, "/list");
        s.expect(" 2  Terminal talk").unwrap();
        say(&mut s, "/open 2");
        s.expect("chat ").unwrap();
        s.expect("4 messages").unwrap();
        say(&mut s, "/delete");
        s.expect("deleted conversation").unwrap();
        say(&mut s, "/frobnicate");
        s.expect("unknown command /frobnicate").unwrap();
        say(&mut s, "/help");
        s.expect("/export json|markdown").unwrap();
        leave(&mut s);

        let export: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(export["conversation"]["title"], "Terminal talk");
        assert_eq!(export["messages"].as_array().unwrap().len(), 4);
        let ids = chat_ids(dir.path(), "tester");
        assert_eq!(ids.len(), 1, "the persona's conversation is left: {ids:?}");
        let history = std::fs::read_to_string(dir.path().join(".bedrock_chat_history")).unwrap();
        assert!(history.contains("/rename Terminal talk"), "{history}");
    }

    #[test]
    fn ask_on_a_terminal_streams_the_answer_and_says_how_to_continue() {
        let dir = Scratch::new("ask-tty");
        let mut s = spawn(dir.path(), &["ask", "hello from a tty"], &[]);
        s.expect("answering: \"hello from a tty\"").unwrap();
        s.expect(Regex("continue with --chat [0-9a-f-]{36}"))
            .unwrap();
        s.expect(expectrl::Eof).unwrap();
        let status = s.get_process().wait().unwrap();
        assert_eq!(
            status,
            expectrl::process::unix::WaitStatus::Exited(s.get_process().pid(), 0)
        );
    }

    #[test]
    fn colours_are_on_in_a_terminal_unless_no_color_is_set() {
        let dir = Scratch::new("repl-colours");
        let mut s = spawn(dir.path(), &["--color", "auto"], &[]);
        s.expect("\x1b[1mbedrock-chat\x1b[0m").unwrap();
        say(&mut s, "/frobnicate");
        s.expect("\x1b[31merror:\x1b[0m unknown command").unwrap();
        leave(&mut s);

        let no_color = [("NO_COLOR", "1".to_owned())];
        let mut s = spawn(dir.path(), &["--color", "auto"], &no_color);
        let banner = s.expect("you › ").unwrap();
        let shown = String::from_utf8_lossy(banner.before()).into_owned();
        assert!(shown.contains("bedrock-chat · model offline"), "{shown:?}");
        assert!(
            !shown.contains("\x1b[1m"),
            "no bold with NO_COLOR: {shown:?}"
        );
        s.send_line("/frobnicate").unwrap();
        s.expect("\nerror: unknown command").unwrap();
        leave(&mut s);
    }

    #[test]
    fn a_refused_send_is_shown_and_the_chat_goes_on() {
        let dir = Scratch::new("repl-limited");
        let mut s = spawn(dir.path(), &["--rate-limit", "1/min"], &[]);
        say(&mut s, "first");
        s.expect("answering: \"first\"").unwrap();
        say(&mut s, "second");
        s.expect("error: rate limit exceeded").unwrap();
        say(&mut s, "/list");
        s.expect(" 1  first").unwrap();
        leave(&mut s);
    }

    #[cfg(feature = "fake-bedrock")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_that_breaks_off_is_an_error_and_the_chat_goes_on() {
        use bedrock_chat_core::testkit::{FakeBedrock, Fault};

        let fake = FakeBedrock::start().await.unwrap();
        fake.push_fault(Fault::exception_after(
            2,
            "modelStreamErrorException",
            "the model broke off",
        ));
        let env = crate::support::aws_env(&fake);
        let dir = Scratch::new("repl-broken");
        let path = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            let mut s = spawn(&path, &["--model", "bedrock:amazon.nova-micro-v1:0"], &env);
            say(&mut s, "one two three four five six");
            s.expect("error: the model failed").unwrap();
            s.expect("nothing was saved").unwrap();
            // The fake answers the retry by echoing it.
            say(&mut s, "once more");
            s.expect(Regex("new conversation [0-9a-f-]{36}")).unwrap();
            leave(&mut s);
            let ids = chat_ids(&path, "tester");
            assert_eq!(ids.len(), 1, "only the retry was stored");
        })
        .await
        .unwrap();
    }

    #[cfg(feature = "fake-bedrock")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ctrl_c_during_an_answer_stops_it_keeps_the_chat_and_stores_the_whole_reply() {
        use bedrock_chat_core::testkit::{FakeBedrock, FakeReply};

        let fake = FakeBedrock::start().await.unwrap();
        let pieces: Vec<String> = (0..20).map(|i| format!("piece{i} ")).collect();
        let whole = pieces.concat();
        fake.push_reply(
            FakeReply::text("")
                .with_deltas(pieces)
                .with_delta_delay(Duration::from_millis(150))
                .with_time_to_first_token(Duration::from_millis(1000)),
        );
        let env = crate::support::aws_env(&fake);
        let dir = Scratch::new("repl-ctrl-c");
        let path = dir.path().to_owned();
        let whole_text = whole.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = spawn(&path, &["--model", "bedrock:amazon.nova-micro-v1:0"], &env);
            say(&mut s, "tell me a long story");
            s.expect("thinking…").unwrap();
            s.expect("piece2 ").unwrap();
            s.send(ControlCode::EndOfText).unwrap();
            let stopped = s.expect("stopped; the whole reply is still saved").unwrap();
            let shown = String::from_utf8_lossy(stopped.before()).into_owned();
            assert!(
                !shown.contains("piece19"),
                "the answer stopped on screen: {shown}"
            );
            // The chat goes on; the next message waits for the stopped reply to be stored,
            // so that it follows it.
            say(&mut s, "/help");
            s.expect("/usage").unwrap();
            say(&mut s, "and then");
            s.expect("and then").unwrap();
            leave(&mut s);

            let ids = chat_ids(&path, "tester");
            assert_eq!(ids.len(), 1);
            let export = cli(&path, &["history", "export", &ids[0], "--format", "json"]);
            let export = export.assert_ok().json();
            let messages = export["messages"].as_array().unwrap();
            assert_eq!(messages.len(), 4, "{export}");
            assert_eq!(
                messages[1]["content"],
                whole_text.as_str(),
                "the whole reply"
            );
            assert_eq!(messages[2]["content"], "and then", "{export}");
        })
        .await
        .unwrap();
    }
}

mod server {
    //! The CLI and the server on one SQLite file.

    use super::*;
    use crate::support::Server;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_conversation_started_in_the_cli_is_seen_through_the_server_and_back() {
        let dir = Scratch::new("shared");
        let path = dir.path().to_owned();
        let asked = tokio::task::spawn_blocking(move || {
            cli(
                &path,
                &["--user", "alice", "ask", "--json", "Hello from the CLI"],
            )
        })
        .await
        .unwrap();
        let chat_id = asked.assert_ok().json()["chat_id"]
            .as_str()
            .unwrap()
            .to_owned();

        let key = "alice-key-0123456789abcdef";
        std::fs::write(dir.path().join("keys.txt"), format!("alice {key}\n")).unwrap();
        let server = Server::start(
            dir.path(),
            &["--auth", "api-key", "--api-keys", "keys.txt"],
            &[],
        )
        .await;
        let client = reqwest::Client::new();
        let get = |path: String| client.get(server.url(&path)).bearer_auth(key).send();
        let list: Value = get("/api/v1/conversations".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let conversations = list["conversations"].as_array().unwrap();
        assert_eq!(conversations.len(), 1, "{list}");
        assert_eq!(conversations[0]["chat_id"], chat_id.as_str(), "{list}");
        let export = get(format!(
            "/api/v1/conversations/{chat_id}/export?format=markdown"
        ))
        .await
        .unwrap();
        assert!(export.status().is_success(), "{export:?}");
        let markdown = export.text().await.unwrap();
        assert!(markdown.contains("Hello from the CLI"), "{markdown}");

        // And back: a message sent through the server continues it in the CLI.
        let sent = client
            .post(server.url("/api/v1/chats"))
            .bearer_auth(key)
            .json(&serde_json::json!({"message": "Hello from HTTP", "chat_id": chat_id}))
            .send()
            .await
            .unwrap();
        assert!(sent.status().is_success(), "{sent:?}");
        let path = dir.path().to_owned();
        let id = chat_id.clone();
        let show = tokio::task::spawn_blocking(move || {
            cli(&path, &["--user", "alice", "history", "show", &id])
        })
        .await
        .unwrap();
        show.assert_ok();
        assert!(show.stdout.contains("4 messages"), "{show:?}");
        assert!(show.stdout.contains("Hello from HTTP"), "{show:?}");
        drop(server);
    }
}
