//! What the tests that run the example programs share: the program binaries next to the
//! test's own, run with a clean environment, scratch directories under `target/tmp`, a
//! bounded wait for a process's exit, and a running server process that is killed when
//! dropped. Each test file uses a part of it.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a server may take to print its `listening on` line.
pub(crate) const STARTUP: Duration = Duration::from_secs(60);
/// How long a process may take to exit by itself (bad configuration, `--help`).
pub(crate) const EXIT: Duration = Duration::from_secs(60);
/// The example binary `name` next to this test's own: `target/<profile>/deps/TEST-HASH` →
/// `target/<profile>/examples/NAME`.
pub(crate) fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in target/<profile>/deps", exe.display()));
    let binary = profile
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "the {name} binary is missing at {}: build it with `cargo build --workspace \
         --all-features --example {name}` (plain `cargo test` builds the examples; a run \
         filtered to one test file does not)",
        binary.display()
    );
    binary
}

/// The server binary: `target/<profile>/examples/server`.
pub(crate) fn server_binary() -> PathBuf {
    binary("server")
}

/// A directory under `target/tmp` for one test, named after the test file and `kind`;
/// removed when dropped.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn new(kind: &str) -> Self {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{}-{kind}-{}",
            env!("CARGO_CRATE_NAME"),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The example program `name` run in `dir`, with none of this process's
/// `BEDROCK_CHAT_*`, `BEDROCK_MODEL_ID`, `AWS_*`, `XDG_*`, `RUST_LOG`, `NO_COLOR`,
/// `USERNAME` or `LOGNAME` variables; `USER` is `tester` and `HOME` is `dir`. Only `args`
/// and `env` configure it. Its stdin is left to the caller (a pipe, or a pseudo-terminal
/// that expectrl sets up).
pub(crate) fn program(name: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary(name));
    command.args(args).current_dir(dir);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("BEDROCK_CHAT_")
            || text.starts_with("AWS_")
            || text.starts_with("XDG_")
            || [
                "BEDROCK_MODEL_ID",
                "RUST_LOG",
                "NO_COLOR",
                "USERNAME",
                "LOGNAME",
            ]
            .contains(&text.as_ref())
        {
            command.env_remove(&name);
        }
    }
    command.env("USER", "tester").env("HOME", dir);
    command.envs(env.iter().copied());
    command
}

/// The server [`program`], its stdin empty.
pub(crate) fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = program("server", dir, args, env);
    command.stdin(Stdio::null());
    command
}

/// Waits for `child` to exit, at most `limit`, and collects its output; kills it and
/// panics, naming it `what`, when it is still running then.
pub(crate) fn output_within(child: Child, limit: Duration, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(output) = rx.recv_timeout(limit) else {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("{what} was still running after {limit:?}");
    };
    output.unwrap()
}

/// Runs the server to its exit; its status, stdout and stderr.
pub(crate) fn run_to_exit(dir: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    let child = command(dir, args, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = output_within(child, EXIT, &format!("the server with {args:?}"));
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A running server process; killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the server in `dir` on a free loopback port, with `args` and `env`, and
    /// waits for its `listening on http://HOST:PORT` line.
    pub(crate) async fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut all = vec!["--bind", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut child = command(dir, &all, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = first_tx.send(lines.next().and_then(Result::ok));
            // Keep the pipe drained for as long as the process writes to it.
            lines.for_each(drop);
        });
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr: log,
            stderr_reader: Some(stderr_reader),
        };
        let line = match tokio::time::timeout(STARTUP, first_rx).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => {
                let status = server.child.wait();
                panic!(
                    "the server ({all:?}) exited before saying where it listens: {status:?}\n{}",
                    server.log()
                );
            }
            Err(_) => panic!(
                "the server ({all:?}) printed no line within {STARTUP:?}\n{}",
                server.log()
            ),
        };
        server.addr = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("the first line is not `listening on http://…`: {line:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("{line:?}: {e}"));
        server
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the process wrote to stderr so far (all of it once it has exited).
    pub(crate) fn log(&mut self) -> String {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            if let Some(reader) = self.stderr_reader.take() {
                let _ = reader.join();
            }
        }
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM, as a service manager stops a service.
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {}: {status}", self.child.id());
    }

    /// Waits for the process to exit by itself, at most `limit`.
    pub(crate) async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                panic!("the server did not exit within {limit:?}\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then a clean exit (code 0).
    pub(crate) async fn stop(&mut self) {
        self.terminate();
        let status = self.wait_exit(Duration::from_secs(30)).await;
        assert_eq!(status.code(), Some(0), "{status}\n{}", self.log());
    }
}

/// The `--model` that the tests point at a `FakeBedrock`.
#[cfg(feature = "fake-bedrock")]
pub(crate) const FAKE_MODEL: &str = "bedrock:amazon.nova-micro-v1:0";

/// The environment that points a program's AWS SDK at `fake` (and nowhere else).
#[cfg(feature = "fake-bedrock")]
pub(crate) fn aws_env(
    fake: &bedrock_chat_core::testkit::FakeBedrock,
) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.url()),
        ("AWS_ACCESS_KEY_ID", "x".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "x".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

/// Serves `state` through the server's router on a free loopback port, in this process;
/// answers the base URL (`http://127.0.0.1:PORT`).
pub async fn serve(
    state: bedrock_chat_examples::http::AppState,
    settings: &bedrock_chat_examples::http::RouterSettings,
) -> String {
    let app = bedrock_chat_examples::http::router(state, settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

/// Serves `service` as the server does without auth (an identity cookie per browser,
/// requests limited per client IP), with `settings`; answers the base URL.
pub async fn serve_anonymous(
    service: bedrock_chat_core::ChatService,
    settings: &bedrock_chat_examples::http::RouterSettings,
) -> String {
    use bedrock_chat_examples::http::{AppState, Authenticator, Metrics};
    let state = AppState {
        service,
        auth: Arc::new(Authenticator::Anonymous {
            secure_cookies: false,
            trust_forwarded_for: false,
        }),
        metrics: Metrics::new(),
    };
    serve(state, settings).await
}

/// A client with its own cookie jar: one browser, one anonymous identity.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// The events of a Server-Sent Events body: each event's name and its JSON data.
pub fn parse_sse(text: &str) -> Vec<(String, serde_json::Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = Some(name.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            Some((event?, serde_json::from_str(&data).ok()?))
        })
        .collect()
}

/// A JSON client of a served router: one browser (its own cookie jar, so one anonymous
/// identity) on `base`.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

impl Api {
    /// A new browser on the server at `base`.
    pub fn new(base: &str) -> Self {
        Self::with_client(base, &browser())
    }

    /// `client` (a browser, its cookie jar shared with its clones) on the server at `base`.
    pub fn with_client(base: &str, client: &reqwest::Client) -> Self {
        Self {
            base: base.to_owned(),
            client: client.clone(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs `body` as JSON: the status and the body (JSON, or the text as a string).
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// GETs `path`, which must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    /// GETs `path`, which must answer 200: its body as text.
    pub async fn get_text(&self, path: &str) -> String {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {path}");
        response.text().await.unwrap()
    }

    /// A streamed send's events.
    pub async fn stream(&self, body: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
        let response = self
            .client
            .post(self.url("/api/v1/chats/stream"))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        parse_sse(&response.text().await.unwrap())
    }

    /// The messages of conversation `chat_id`, oldest first.
    pub async fn messages(&self, chat_id: &str) -> Vec<serde_json::Value> {
        let page = self
            .get_json(&format!("/api/v1/conversations/{chat_id}/messages"))
            .await;
        page["items"].as_array().unwrap().clone()
    }
}

/// A finished run of a program: exit code and output.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the CLI in `dir` with `args`, no input and a clean environment, to its exit.
pub fn cli(dir: &Path, args: &[&str]) -> Run {
    cli_with_env(dir, args, &[])
}

/// [`cli`] with `env` set too (say [`aws_env`] for a `FakeBedrock`).
pub fn cli_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let child = program("cli", dir, args, env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = output_within(child, EXIT, &format!("the CLI with {args:?}"));
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
