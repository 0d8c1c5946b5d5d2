//! What the CLI shows: colours only on a terminal (and never with `NO_COLOR`), a spinner
//! while the first token is awaited (on a terminal only), and a streamed answer written
//! as it arrives. Markdown is left as text.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bedrock_chat_core::{ChatError, ChatId, ChatReply, ChatStream, ModelError, StreamEvent};
use futures::StreamExt;
use serde_json::Value;

use super::ColorChoice;

/// Which streams are terminals, and whether each gets colours.
#[derive(Clone, Copy, Debug)]
pub struct Terminal {
    /// stdin is a terminal (someone types).
    pub stdin_tty: bool,
    /// stdout is a terminal.
    pub stdout_tty: bool,
    /// stderr is a terminal.
    pub stderr_tty: bool,
    out: Paint,
    err: Paint,
}

impl Terminal {
    /// Looks at the process's streams and at `NO_COLOR` (any non-empty value turns colours
    /// off, <https://no-color.org>) under `choice`.
    pub fn detect(choice: ColorChoice) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let stdout_tty = std::io::stdout().is_terminal();
        let stderr_tty = std::io::stderr().is_terminal();
        let colour = |tty: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color,
        };
        Self {
            stdin_tty: std::io::stdin().is_terminal(),
            stdout_tty,
            stderr_tty,
            out: Paint(colour(stdout_tty)),
            err: Paint(colour(stderr_tty)),
        }
    }

    /// Colours for stdout.
    pub fn out(&self) -> Paint {
        self.out
    }

    /// Colours for stderr.
    pub fn err(&self) -> Paint {
        self.err
    }

    /// `error: MESSAGE` on stderr.
    pub fn error(&self, message: &str) {
        eprintln!("{} {message}", self.err.red("error:"));
    }

    /// A side remark on stderr, dimmed.
    pub fn note(&self, message: &str) {
        eprintln!("{}", self.err.dim(message));
    }
}

/// ANSI colours, or plain text when off.
#[derive(Clone, Copy, Debug)]
pub struct Paint(bool);

impl Paint {
    /// Whether colours are on.
    pub fn enabled(self) -> bool {
        self.0
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Bold.
    pub fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }

    /// Dimmed.
    pub fn dim(self, text: &str) -> String {
        self.wrap("2", text)
    }

    /// Red.
    pub fn red(self, text: &str) -> String {
        self.wrap("31", text)
    }

    /// Green.
    pub fn green(self, text: &str) -> String {
        self.wrap("32", text)
    }

    /// Yellow.
    pub fn yellow(self, text: &str) -> String {
        self.wrap("33", text)
    }

    /// Cyan.
    pub fn cyan(self, text: &str) -> String {
        self.wrap("36", text)
    }
}

/// A spinner on stderr while nothing has arrived yet; removed by [`stop`](Self::stop) (or
/// on drop) before anything else is written.
pub struct Spinner {
    /// `(running, drawn)`, shared with the drawing task.
    state: Arc<Mutex<(bool, bool)>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Spinner {
    const FRAMES: [&'static str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

    /// Starts a spinner labelled `label` when `enabled` (stderr is a terminal); else one
    /// that shows nothing.
    pub fn start(enabled: bool, label: &'static str, paint: Paint) -> Self {
        let state = Arc::new(Mutex::new((enabled, false)));
        if !enabled {
            return Self { state, task: None };
        }
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            // Quick answers show no spinner at all.
            tokio::time::sleep(Duration::from_millis(150)).await;
            for frame in Self::FRAMES.iter().cycle() {
                {
                    let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
                    if !state.0 {
                        return;
                    }
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r{}", paint.dim(&format!("{frame} {label}")));
                    let _ = err.flush();
                    state.1 = true;
                }
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
        });
        Self {
            state,
            task: Some(task),
        }
    }

    /// Stops the spinner and clears its line. Idempotent.
    pub fn stop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 && state.1 {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
        state.0 = false;
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How a streamed answer ended.
#[derive(Debug)]
pub enum Answer {
    /// Complete and stored.
    Done(Box<ChatReply>),
    /// Stopped by the user: the reply goes on being generated and is stored.
    Stopped {
        /// The conversation it is stored in, when the stream had said.
        chat_id: Option<ChatId>,
    },
    /// Failed; nothing was stored.
    Failed {
        /// The conversation, when the stream had said (a new one is not created).
        chat_id: Option<ChatId>,
        /// Why.
        error: ChatError,
    },
}

/// Where the model's reasoning is shown as it streams, before the answer: headed
/// `thinking: `, dimmed when `paint` colours, and set apart from the answer by a blank
/// line.
pub struct Thoughts<'a> {
    out: &'a mut dyn Write,
    paint: Paint,
    /// Whether any reasoning was written, and whether the block was closed.
    started: bool,
    closed: bool,
    /// Whether tool lines were written since the last blank line.
    tool_lines: bool,
}

impl<'a> Thoughts<'a> {
    /// Reasoning written to `out`, coloured by `paint`.
    pub fn new(out: &'a mut dyn Write, paint: Paint) -> Self {
        Self {
            out,
            paint,
            started: false,
            closed: false,
            tool_lines: false,
        }
    }

    fn write(&mut self, text: &str) -> std::io::Result<()> {
        if text.is_empty() || self.closed {
            return Ok(());
        }
        if !self.started {
            self.started = true;
            write!(self.out, "{}", self.paint.dim("thinking: "))?;
        }
        write!(self.out, "{}", self.paint.dim(text))?;
        self.out.flush()
    }

    /// Ends the reasoning or tool lines shown (if any) before the answer starts.
    fn close(&mut self) -> std::io::Result<()> {
        if self.started && !self.closed {
            self.closed = true;
            self.out.write_all(b"\n\n")?;
        } else if self.tool_lines {
            self.out.write_all(b"\n")?;
        }
        self.tool_lines = false;
        self.out.flush()
    }

    /// A tool call and its result on one dimmed line, `tool: NAME INPUT → OUTPUT` (or
    /// `failed: MESSAGE`), cut to a line's length. Reasoning after it (the model's next
    /// round) gets its own `thinking: ` heading.
    fn tool(
        &mut self,
        name: &str,
        input: &Value,
        output: &Value,
        is_error: bool,
    ) -> std::io::Result<()> {
        // Reasoning streamed before the call ends with a blank line; tool lines follow one
        // another.
        if self.started && !self.closed {
            self.closed = true;
            self.out.write_all(b"\n\n")?;
        }
        writeln!(
            self.out,
            "{}",
            tool_line(self.paint, name, input, output, is_error)
        )?;
        self.started = false;
        self.closed = false;
        self.tool_lines = true;
        self.out.flush()
    }
}

/// Reads `stream` to its end, writing each piece of text to `out` as it arrives when
/// `echo` is set, and the model's reasoning and tool calls to `thoughts` when there is
/// somewhere to show them, until `stop` completes first (Ctrl-C). A spinner on stderr covers the wait for the
/// first piece when `spinner` is set. A written answer is ended with a newline.
///
/// # Errors
/// Writing to `out` or `thoughts` failed.
pub async fn stream_answer(
    mut stream: ChatStream,
    out: &mut impl Write,
    echo: bool,
    mut thoughts: Option<Thoughts<'_>>,
    spinner: bool,
    paint: Paint,
    stop: impl Future<Output = ()>,
) -> std::io::Result<Answer> {
    let mut spinner = Spinner::start(spinner, "thinking…", paint);
    let mut chat_id = None;
    let mut wrote = false;
    let mut ends_with_newline = true;
    // Tool calls waiting for their results: id and input.
    let mut calls: Vec<(String, Value)> = Vec::new();
    let mut stop = std::pin::pin!(stop);
    let answer = loop {
        let event = tokio::select! {
            biased;
            () = &mut stop => break Answer::Stopped { chat_id },
            event = stream.next() => event,
        };
        match event {
            Some(StreamEvent::Started { chat_id: id, .. }) => chat_id = Some(id),
            Some(StreamEvent::Reasoning(text)) => {
                if let Some(thoughts) = thoughts.as_mut().filter(|_| !text.is_empty()) {
                    spinner.stop();
                    thoughts.write(&text)?;
                }
            }
            Some(StreamEvent::Delta(text)) => {
                if let Some(thoughts) = thoughts.as_mut() {
                    thoughts.close()?;
                }
                if echo && !text.is_empty() {
                    spinner.stop();
                    out.write_all(text.as_bytes())?;
                    out.flush()?;
                    wrote = true;
                    ends_with_newline = text.ends_with('\n');
                }
            }
            Some(StreamEvent::ToolCall(call)) => calls.push((call.id, call.input)),
            Some(StreamEvent::ToolResult {
                tool_use_id,
                name,
                output,
                is_error,
                ..
            }) => {
                let input = calls
                    .iter()
                    .position(|(id, _)| *id == tool_use_id)
                    .map_or(Value::Null, |at| calls.swap_remove(at).1);
                if let Some(thoughts) = thoughts.as_mut() {
                    spinner.stop();
                    // Text of an earlier round ends before the line.
                    if wrote && !ends_with_newline {
                        out.write_all(b"\n\n")?;
                        ends_with_newline = true;
                    }
                    thoughts.tool(&name, &input, &output, is_error)?;
                }
            }
            Some(StreamEvent::Completed(reply)) => break Answer::Done(reply),
            Some(StreamEvent::Failed(error)) => break Answer::Failed { chat_id, error },
            Some(_) => {}
            None => {
                break Answer::Failed {
                    chat_id,
                    error: ModelError::model_failure("the reply stream ended without a result")
                        .into(),
                }
            }
        }
    };
    spinner.stop();
    if let Some(thoughts) = thoughts.as_mut() {
        thoughts.close()?;
    }
    if wrote && !ends_with_newline {
        out.write_all(b"\n")?;
        out.flush()?;
    }
    // The sources of a cited answer follow it, where reasoning and tools are shown.
    if let (Answer::Done(reply), Some(thoughts)) = (&answer, thoughts.as_mut()) {
        for line in citation_lines(paint, &reply.answer.parts) {
            writeln!(thoughts.out, "{line}")?;
        }
        thoughts.out.flush()?;
    }
    Ok(answer)
}

/// A tool call and its result as one line, `tool: NAME INPUT → OUTPUT` (or `failed:
/// MESSAGE`), cut to 200 characters: dimmed, an error in yellow.
pub fn tool_line(
    paint: Paint,
    name: &str,
    input: &Value,
    output: &Value,
    is_error: bool,
) -> String {
    let output = match output {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let outcome = match is_error {
        true => format!("failed: {output}"),
        false => format!("→ {output}"),
    };
    let line = one_line(&format!("tool: {name} {input} {outcome}"), 200);
    match is_error {
        true => paint.yellow(&line),
        false => paint.dim(&line),
    }
}

/// An answer's citations, a dimmed line each: `[1] “WORDS OF THE ANSWER” ← “QUOTE”
/// (DOCUMENT, LOCATION)`, cut to 200 characters.
pub fn citation_lines(paint: Paint, parts: &[bedrock_chat_core::Part]) -> Vec<String> {
    bedrock_chat_core::citation::citations_of(parts)
        .into_iter()
        .enumerate()
        .map(|(i, (cited, citation))| {
            let cited = one_line(cited, 60);
            let line = format!("[{}] “{cited}” ← {}", i + 1, citation.describe());
            paint.dim(&one_line(&line, 200))
        })
        .collect()
}

/// A count with its noun, pluralised: `1 message`, `3 messages`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `text` on one line, cut to `max` characters with an ellipsis.
pub fn one_line(text: &str, max: usize) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    if line.chars().count() > max {
        let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paint_is_plain_text_when_off() {
        assert_eq!(Paint(false).red("x"), "x");
        assert_eq!(Paint(true).red("x"), "\x1b[31mx\x1b[0m");
    }

    #[test]
    fn tool_calls_are_one_line_each_and_set_apart_from_reasoning_and_answer() {
        let mut plain = Vec::new();
        let mut thoughts = Thoughts::new(&mut plain, Paint(false));
        thoughts.write("need the time").unwrap();
        let input = serde_json::json!({"utc_offset": "+02:00"});
        let output = serde_json::json!({"now": "12:00"});
        thoughts
            .tool("current_time", &input, &output, false)
            .unwrap();
        let failure = Value::String("down".into());
        thoughts
            .tool("weather", &Value::Null, &failure, true)
            .unwrap();
        thoughts.write("again").unwrap();
        thoughts.close().unwrap();
        assert_eq!(
            String::from_utf8(plain).unwrap(),
            "thinking: need the time\n\n\
             tool: current_time {\"utc_offset\":\"+02:00\"} → {\"now\":\"12:00\"}\n\
             tool: weather null failed: down\n\
             thinking: again\n\n"
        );
    }

    #[test]
    fn thoughts_are_headed_dimmed_and_set_apart() {
        let mut plain = Vec::new();
        let mut thoughts = Thoughts::new(&mut plain, Paint(false));
        thoughts.write("a ").unwrap();
        thoughts.write("b").unwrap();
        thoughts.close().unwrap();
        thoughts.write("late").unwrap();
        assert_eq!(String::from_utf8(plain).unwrap(), "thinking: a b\n\n");

        let mut coloured = Vec::new();
        let mut thoughts = Thoughts::new(&mut coloured, Paint(true));
        thoughts.write("a").unwrap();
        thoughts.close().unwrap();
        assert_eq!(
            String::from_utf8(coloured).unwrap(),
            "\x1b[2mthinking: \x1b[0m\x1b[2ma\x1b[0m\n\n"
        );

        let mut none = Vec::new();
        Thoughts::new(&mut none, Paint(true)).close().unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn one_line_flattens_and_cuts() {
        assert_eq!(one_line("a\nb", 10), "a b");
        assert_eq!(one_line("abcdefghij", 5), "abcd…");
        assert_eq!(count(1, "message"), "1 message");
        assert_eq!(count(2, "message"), "2 messages");
    }
}
