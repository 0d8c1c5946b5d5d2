//! `chat`: the interactive loop. Lines are read by rustyline on a thread of its own (its
//! API blocks), answers stream as they are written, slash commands manage conversations.
//!
//! Ctrl-C while an answer streams stops showing it: the service goes on generating the
//! reply and stores it (a dropped [`ChatStream`](bedrock_chat_core::ChatStream) does not
//! stop generation), and the program waits for such replies before it exits. Ctrl-C at
//! the prompt clears the line; Ctrl-D (or `/quit`) leaves.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;

use bedrock_chat_core::{
    ChatId, ChatService, Conversation, ConversationUpdate, ExportFormat, InferenceConfig,
    ListOptions, Part, SendRequest, StoreError, UserId,
};
use chrono::Utc;
use futures::FutureExt;
use rustyline::error::ReadlineError;
use tokio::sync::oneshot;

use super::exit::Failure;
use super::history::{self, print_list, print_message};
use super::output::{count, one_line, stream_answer, Answer, Spinner, Terminal, Thoughts};
use super::ChatArgs;

/// Conversations `/list` shows.
const LIST_LIMIT: u32 = 20;
/// Messages `/open` shows of the conversation it opens.
const OPEN_SHOWS: u32 = 6;

const HELP: &str = "\
Type a message and press Enter to send it. Commands:
  /new                  start a new conversation (your next message begins it)
  /list                 your conversations, newest first, numbered
  /open N|ID            open conversation N of the last /list, or by id
  /rename TITLE         rename this conversation
  /delete               delete this conversation
  /persona DESCRIPTION  make a persona and start a conversation with it
  /system [PROMPT]      show, or set, the system prompt of this conversation
  /export json|markdown [FILE]
                        this conversation as JSON or Markdown, on screen or to FILE
  /attach [PATH]        attach a file to your next message (images png, jpg, jpeg, gif,
                        webp; documents pdf, csv, doc, docx, xls, xlsx, html, htm, txt,
                        md); alone, list what is attached
  /detach               drop the files attached to your next message
  /usage                tokens used today and in all, and the budget left
  /reasoning [N|off]    let the model reason first, with up to N tokens (shown dimmed
                        before its answer), or not; alone, show the setting
  /help                 this help
  /quit                 leave (Ctrl-D too)
Ctrl-C stops an answer (the whole reply is still saved). Start a message with // to send
a line beginning with /.";

/// Runs the interactive chat until Ctrl-D or `/quit`.
///
/// # Errors
/// A [`Failure`] when `--chat` names no conversation of the user, when the terminal cannot
/// be read, or when writing the output fails; errors of single commands are shown and the
/// loop goes on.
pub async fn run(
    service: &ChatService,
    user: &UserId,
    args: ChatArgs,
    reasoning: Option<u32>,
    terminal: &Terminal,
) -> Result<(), Failure> {
    // From here on Ctrl-C outside the line editor is ours (it stops the current answer or
    // command) rather than the default that ends the process: polling `ctrl_c` once
    // installs the handler.
    let _ = tokio::signal::ctrl_c().now_or_never();

    let mut session = Session {
        service,
        user,
        terminal,
        chat: None,
        pending_system: None,
        listed: Vec::new(),
        attached: Vec::new(),
        reasoning,
    };
    if terminal.stdout_tty {
        session.banner()?;
    }
    if let Some(id) = args.chat {
        session.open(id).await?;
    }
    let history = args.history_file.or_else(default_history_file);
    let mut editor = LineEditor::spawn(history)?;
    let paint = terminal.out();
    let prompt = ("you › ".to_owned(), format!("{} ", paint.green("you ›")));
    let mut first = true;
    loop {
        // A blank line between an exchange and the next prompt, on a screen.
        if terminal.stdout_tty && !std::mem::take(&mut first) {
            println!();
        }
        let line = match editor.read_line(prompt.clone()).await {
            Read::Line(line) => line,
            Read::Interrupted => continue,
            Read::Eof => break,
            Read::Failed(e) => return Err(Failure::Io(std::io::Error::other(e))),
        };
        let line = line.trim();
        if line.is_empty() {
            first = true;
            continue;
        }
        match session.handle(line).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Quit) => break,
            Err(Failure::Io(e)) => return Err(Failure::Io(e)),
            Err(failure) => terminal.error(&failure.to_string()),
        }
    }
    editor.close();
    if service.in_flight() > 0 {
        // The caller waits for it (`ChatService::shutdown`) before the process exits.
        terminal.note("saving the reply still being generated…");
    }
    Ok(())
}

/// Where typed lines are kept across runs: `$XDG_DATA_HOME/bedrock-chat/history` when
/// that directory exists or can be made, else `~/.bedrock_chat_history`.
fn default_history_file() -> Option<PathBuf> {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(data).join("bedrock-chat");
        if std::fs::create_dir_all(&dir).is_ok() {
            return Some(dir.join("history"));
        }
    }
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".bedrock_chat_history"))
}

/// What the loop does after a line.
enum Flow {
    Continue,
    Quit,
}

/// Resolves on Ctrl-C (SIGINT while the terminal is not in the line editor's raw mode).
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling on this platform: never interrupt.
        std::future::pending::<()>().await;
    }
}

/// `future`, or `None` when Ctrl-C comes first (the future is dropped).
async fn interruptible<T>(future: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        value = future => Some(value),
        () = ctrl_c() => None,
    }
}

struct Session<'a> {
    service: &'a ChatService,
    user: &'a UserId,
    terminal: &'a Terminal,
    /// The open conversation; `None` until the next message starts one.
    chat: Option<ChatId>,
    /// A `/system` prompt given before the conversation exists.
    pending_system: Option<String>,
    /// The conversations of the last `/list`, for `/open N`.
    listed: Vec<ChatId>,
    /// Files `/attach`ed for the next message: their paths and parts.
    attached: Vec<(PathBuf, Part)>,
    /// The reasoning budget of each send (`--reasoning-budget`, then `/reasoning`).
    reasoning: Option<u32>,
}

impl Session<'_> {
    fn banner(&self) -> std::io::Result<()> {
        let paint = self.terminal.out();
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{} {}",
            paint.bold("bedrock-chat"),
            paint.dim(&format!(
                "· model {} · {} store · user {}",
                self.service.model().model_id(),
                self.service.store().backend(),
                self.user
            ))
        )?;
        writeln!(
            out,
            "{}",
            paint.dim("/help lists the commands. Ctrl-C stops an answer, Ctrl-D leaves.")
        )?;
        out.flush()
    }

    async fn handle(&mut self, line: &str) -> Result<Flow, Failure> {
        if let Some(escaped) = line.strip_prefix("//") {
            self.send(format!("/{escaped}")).await?;
            return Ok(Flow::Continue);
        }
        let Some(command) = line.strip_prefix('/') else {
            self.send(line.to_owned()).await?;
            return Ok(Flow::Continue);
        };
        let (name, rest) = match command.split_once(char::is_whitespace) {
            Some((name, rest)) => (name, rest.trim()),
            None => (command, ""),
        };
        if matches!(name, "quit" | "exit" | "q") {
            return Ok(Flow::Quit);
        }
        match interruptible(self.command(name, rest)).await {
            Some(result) => result?,
            None => self.terminal.note("stopped"),
        }
        Ok(Flow::Continue)
    }

    async fn command(&mut self, name: &str, rest: &str) -> Result<(), Failure> {
        match name {
            "help" | "h" | "?" => {
                println!("{HELP}");
                Ok(())
            }
            "new" => {
                self.chat = None;
                self.pending_system = None;
                self.terminal
                    .note("new conversation: your next message starts it");
                Ok(())
            }
            "list" | "ls" => self.list().await,
            "open" => {
                let id = self.resolve(rest)?;
                self.open(id).await
            }
            "rename" => self.rename(rest).await,
            "delete" => self.delete().await,
            "persona" => self.persona(rest).await,
            "system" => self.system(rest).await,
            "export" => self.export(rest).await,
            "usage" => self.usage().await,
            "reasoning" => self.set_reasoning(rest),
            "attach" => self.attach(rest),
            "detach" => {
                let n = self.attached.len();
                self.attached.clear();
                self.terminal
                    .note(&format!("dropped {}", count(n as u64, "attachment")));
                Ok(())
            }
            _ => Err(Failure::Usage(format!(
                "unknown command /{name}; /help lists them"
            ))),
        }
    }

    fn current(&self) -> Result<ChatId, Failure> {
        self.chat.ok_or_else(|| {
            Failure::Usage("no conversation is open: send a message, or /open one".into())
        })
    }

    async fn send(&mut self, text: String) -> Result<(), Failure> {
        let terminal = self.terminal;
        if self.service.in_flight() > 0 {
            // A reply stopped with Ctrl-C is still being generated: let it be stored first,
            // so that the model sees it in this message's context.
            let mut spinner = Spinner::start(
                terminal.stdout_tty && terminal.stderr_tty,
                "saving the previous reply…",
                terminal.err(),
            );
            let saved = interruptible(self.service.shutdown()).await;
            spinner.stop();
            if saved.is_none() {
                terminal.note("stopped; nothing was sent");
                return Ok(());
            }
        }
        let mut request = SendRequest::new(self.user.clone(), text);
        for (_, part) in &self.attached {
            request = request.with_attachment(part.clone());
        }
        if let Some(budget) = self.reasoning {
            request = request.with_inference(InferenceConfig::new().with_reasoning_budget(budget));
        }
        match self.chat {
            Some(id) => request = request.in_chat(id),
            None => {
                if let Some(prompt) = &self.pending_system {
                    request = request.with_system_prompt(prompt.clone());
                }
            }
        }
        let Some(stream) = interruptible(self.service.send_stream(request)).await else {
            terminal.note("stopped before the model started; nothing was sent");
            return Ok(());
        };
        let mut stdout = std::io::stdout();
        let mut thoughts_out = std::io::stdout();
        let answer = stream_answer(
            stream?,
            &mut stdout,
            true,
            Some(Thoughts::new(&mut thoughts_out, terminal.out())),
            terminal.stdout_tty && terminal.stderr_tty,
            terminal.err(),
            ctrl_c(),
        )
        .await?;
        if !matches!(answer, Answer::Failed { .. }) {
            // Stored with the message: the next one starts with none.
            self.attached.clear();
        }
        match answer {
            Answer::Done(reply) => {
                if self.chat.is_none() {
                    self.pending_system = None;
                    terminal.note(&format!("new conversation {}", reply.chat_id));
                }
                self.chat = Some(reply.chat_id);
            }
            Answer::Stopped { chat_id } => {
                if self.chat.is_none() {
                    self.pending_system = None;
                }
                self.chat = self.chat.or(chat_id);
                terminal.note("stopped; the whole reply is still saved in this conversation");
            }
            Answer::Failed { error, .. } => {
                terminal.error(&error.to_string());
                terminal.note("nothing was saved; send the message again to retry");
            }
        }
        Ok(())
    }

    /// `/reasoning N` lets the model reason with up to N tokens, `/reasoning off` not;
    /// `/reasoning` shows the setting.
    fn set_reasoning(&mut self, arg: &str) -> Result<(), Failure> {
        self.reasoning = match arg {
            "" => self.reasoning,
            "off" | "0" => None,
            n => {
                let budget = n.parse::<u32>().map_err(|_| {
                    Failure::Usage(format!("/reasoning N|off: `{n}` is not a number of tokens"))
                })?;
                let inference = InferenceConfig::new().with_reasoning_budget(budget);
                crate::config::check_reasoning(
                    &self.service.policy().inference.overridden_by(&inference),
                )
                .map_err(|reason| Failure::Usage(format!("/reasoning: {reason}")))?;
                Some(budget)
            }
        };
        self.terminal.note(&match self.reasoning {
            Some(n) => format!("reasoning: up to {n} tokens before each answer"),
            None => "reasoning: off".to_owned(),
        });
        Ok(())
    }

    /// `/attach PATH` queues a file for the next message; `/attach` lists the queue.
    fn attach(&mut self, path: &str) -> Result<(), Failure> {
        if path.is_empty() {
            if self.attached.is_empty() {
                self.terminal
                    .note("nothing attached; /attach PATH attaches a file to your next message");
            }
            for (path, part) in &self.attached {
                let what = bedrock_chat_core::parts::describe(part).unwrap_or_default();
                self.terminal.note(&format!("{} · {what}", path.display()));
            }
            return Ok(());
        }
        let path = PathBuf::from(path);
        let part = super::attach::read(&path)?;
        let what = bedrock_chat_core::parts::describe(&part).unwrap_or_default();
        self.attached.push((path, part));
        self.terminal.note(&format!(
            "attached {what}; {} go with your next message (/detach drops them)",
            count(self.attached.len() as u64, "file")
        ));
        Ok(())
    }

    async fn list(&mut self) -> Result<(), Failure> {
        let page = self
            .service
            .store()
            .list_conversations(self.user, ListOptions::first(LIST_LIMIT))
            .await?;
        self.listed = page.items.iter().map(|c| c.id).collect();
        if page.items.is_empty() {
            self.terminal.note("no conversations yet");
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        print_list(&mut out, &page.items, self.terminal.out(), true)?;
        out.flush()?;
        if page.next_cursor.is_some() {
            self.terminal.note(&format!(
                "the latest {LIST_LIMIT}; `history list --limit N` lists more"
            ));
        }
        Ok(())
    }

    /// `N` of the last `/list`, a whole id, or the start of an id in the last `/list`.
    fn resolve(&self, arg: &str) -> Result<ChatId, Failure> {
        if arg.is_empty() {
            return Err(Failure::Usage("/open N|ID: which conversation?".into()));
        }
        if let Ok(n) = arg.parse::<usize>() {
            return n
                .checked_sub(1)
                .and_then(|i| self.listed.get(i))
                .copied()
                .ok_or_else(|| Failure::Usage(format!("no conversation {n} in the last /list")));
        }
        if let Ok(id) = arg.parse::<ChatId>() {
            return Ok(id);
        }
        let matching: Vec<ChatId> = self
            .listed
            .iter()
            .filter(|id| id.to_string().starts_with(arg))
            .copied()
            .collect();
        match matching.as_slice() {
            [id] => Ok(*id),
            [] => Err(Failure::Usage(format!(
                "`{arg}` is not a number from /list nor a conversation id"
            ))),
            _ => Err(Failure::Usage(format!(
                "`{arg}` starts several conversation ids"
            ))),
        }
    }

    async fn open(&mut self, id: ChatId) -> Result<(), Failure> {
        let store = self.service.store();
        let conversation = store.get_conversation(self.user, id).await?;
        let mut latest = store
            .list_messages(self.user, id, ListOptions::latest(OPEN_SHOWS))
            .await?
            .items;
        latest.reverse();
        self.chat = Some(id);
        self.pending_system = None;
        let paint = self.terminal.out();
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", paint.bold(&one_line(&conversation.title, 200)))?;
        let shown = latest.len() as u64;
        let mut facts = format!(
            "chat {} · {}",
            conversation.id,
            count(conversation.message_count, "message")
        );
        if conversation.message_count > shown {
            facts.push_str(&format!(", the last {shown} below"));
        }
        writeln!(out, "{}", paint.dim(&facts))?;
        for message in &latest {
            writeln!(out)?;
            print_message(&mut out, message, paint)?;
        }
        out.flush()?;
        Ok(())
    }

    async fn rename(&mut self, title: &str) -> Result<(), Failure> {
        let id = self.current()?;
        if title.is_empty() {
            return Err(Failure::Usage("/rename TITLE: give the new title".into()));
        }
        let conversation = self
            .service
            .store()
            .update_conversation(self.user, id, ConversationUpdate::new().with_title(title))
            .await?;
        self.terminal.note(&format!(
            "renamed to “{}”",
            one_line(&conversation.title, 200)
        ));
        Ok(())
    }

    async fn delete(&mut self) -> Result<(), Failure> {
        let id = self.current()?;
        // Through the service: the attachments in the blob store go too.
        self.service.delete_conversation(self.user, id).await?;
        self.chat = None;
        self.listed.retain(|listed| *listed != id);
        self.terminal.note(&format!(
            "deleted conversation {id}; your next message starts a new one"
        ));
        Ok(())
    }

    async fn persona(&mut self, description: &str) -> Result<(), Failure> {
        if description.is_empty() {
            return Err(Failure::Usage(
                "/persona DESCRIPTION: describe who the persona is".into(),
            ));
        }
        let spinner_on = self.terminal.stdout_tty && self.terminal.stderr_tty;
        let mut spinner = Spinner::start(spinner_on, "making the persona…", self.terminal.err());
        let made = self
            .service
            .create_persona(SendRequest::new(self.user.clone(), description))
            .await;
        spinner.stop();
        let made = made?;
        let conversation: Conversation = self
            .service
            .start_conversation(self.user, &made.persona)
            .await?;
        self.chat = Some(conversation.id);
        self.pending_system = None;
        let paint = self.terminal.out();
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", paint.bold(&made.persona.name))?;
        writeln!(out, "{}", made.persona.description)?;
        out.flush()?;
        self.terminal.note(&format!(
            "new conversation {} with {}: say hello",
            conversation.id, made.persona.name
        ));
        Ok(())
    }

    async fn system(&mut self, prompt: &str) -> Result<(), Failure> {
        let store = self.service.store();
        if prompt.is_empty() {
            let current = match self.chat {
                Some(id) => store.get_conversation(self.user, id).await?.system_prompt,
                None => self.pending_system.clone(),
            };
            let shown = current
                .or_else(|| self.service.policy().system_prompt.clone())
                .unwrap_or_else(|| "(none)".to_owned());
            println!("{shown}");
            return Ok(());
        }
        match self.chat {
            Some(id) => {
                store
                    .update_conversation(
                        self.user,
                        id,
                        ConversationUpdate::new().with_system_prompt(prompt),
                    )
                    .await?;
                self.terminal
                    .note("system prompt set for the rest of this conversation");
            }
            None => {
                self.pending_system = Some(prompt.to_owned());
                self.terminal
                    .note("system prompt set for the conversation your next message starts");
            }
        }
        Ok(())
    }

    async fn export(&mut self, args: &str) -> Result<(), Failure> {
        let id = self.current()?;
        let mut words = args.split_whitespace();
        let format: ExportFormat = words
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| Failure::Usage("/export json|markdown [FILE]".into()))?;
        match words.next() {
            Some(path) => {
                // A file that cannot be written is reported; it does not end the chat as a
                // broken terminal would.
                let file_error = |e: std::io::Error| Failure::Usage(format!("{path}: {e}"));
                let file = std::fs::File::create(path).map_err(file_error)?;
                let mut file = std::io::BufWriter::new(file);
                match history::export(self.service, self.user, id, format, &mut file).await {
                    Err(Failure::Io(e)) => return Err(file_error(e)),
                    result => result?,
                }
                self.terminal.note(&format!("wrote {path}"));
            }
            None => {
                let mut out = std::io::stdout().lock();
                history::export(self.service, self.user, id, format, &mut out).await?;
                if format == ExportFormat::Json {
                    // The JSON export ends with a newline already; Markdown may not.
                } else {
                    writeln!(out)?;
                }
            }
        }
        Ok(())
    }

    async fn usage(&mut self) -> Result<(), Failure> {
        let store = self.service.store();
        let totals = store.usage(self.user).await?;
        let today = Utc::now().date_naive();
        let today_usage = match store.daily_usage(self.user, today, today).await {
            Ok(days) => days.into_iter().find(|d| d.day == today),
            Err(StoreError::Unsupported { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let paint = self.terminal.out();
        let mut out = std::io::stdout().lock();
        let tokens = |u: bedrock_chat_core::Usage| {
            format!(
                "{} tokens ({} in, {} out)",
                u.total_tokens, u.input_tokens, u.output_tokens
            )
        };
        if let Some(day) = today_usage {
            writeln!(
                out,
                "{}  {} · {}",
                paint.dim("today   "),
                tokens(day.usage),
                count(day.calls, "call")
            )?;
        }
        writeln!(
            out,
            "{}  {} · {}",
            paint.dim("all time"),
            tokens(totals.usage),
            count(totals.calls, "call")
        )?;
        writeln!(
            out,
            "{}  {}, {}",
            paint.dim("history "),
            count(totals.conversations, "conversation"),
            count(totals.messages, "message")
        )?;
        if let Some(budget) = self.service.token_budget() {
            let decision = budget
                .check(self.user.as_str(), 0)
                .await
                .map_err(bedrock_chat_core::ChatError::from)?;
            writeln!(
                out,
                "{}  {} of {} tokens left, for {}s more",
                paint.dim("budget  "),
                decision.remaining,
                decision.limit,
                decision.reset_after_secs()
            )?;
        }
        out.flush()?;
        Ok(())
    }
}

/// The slash commands, for Tab completion.
const COMMANDS: [&str; 15] = [
    "/new",
    "/list",
    "/open ",
    "/rename ",
    "/delete",
    "/persona ",
    "/system ",
    "/export ",
    "/usage",
    "/reasoning ",
    "/attach ",
    "/detach",
    "/help",
    "/quit",
    "/exit",
];

/// What the line editor adds to plain line reading: the styled prompt (rustyline draws
/// it through a highlighter) and Tab completion of slash commands.
struct ChatHelper;

impl rustyline::Helper for ChatHelper {}
impl rustyline::highlight::Highlighter for ChatHelper {}
impl rustyline::validate::Validator for ChatHelper {}

impl rustyline::hint::Hinter for ChatHelper {
    type Hint = String;
}

impl rustyline::completion::Completer for ChatHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let typed = line.get(..pos).unwrap_or_default();
        if !typed.starts_with('/') || typed.contains(char::is_whitespace) {
            return Ok((0, Vec::new()));
        }
        let matches = COMMANDS
            .iter()
            .filter(|command| command.starts_with(typed))
            .map(|command| (*command).to_owned())
            .collect();
        Ok((0, matches))
    }
}

/// What the line editor read.
enum Read {
    Line(String),
    Interrupted,
    Eof,
    Failed(String),
}

/// A prompt (plain, styled) and where to send what was read with it.
type ReadRequest = ((String, String), oneshot::Sender<Read>);

/// rustyline on a thread of its own: its `readline` blocks. Each line read is added to
/// the history and appended to the history file.
struct LineEditor {
    requests: Option<std::sync::mpsc::Sender<ReadRequest>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LineEditor {
    fn spawn(history: Option<PathBuf>) -> Result<Self, Failure> {
        let (requests, inbox) = std::sync::mpsc::channel::<ReadRequest>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("line-editor".into())
            .spawn(move || {
                let editor = rustyline::Editor::<ChatHelper, rustyline::history::DefaultHistory>::new();
                let mut editor = match editor {
                    Ok(mut editor) => {
                        editor.set_helper(Some(ChatHelper));
                        let _ = ready_tx.send(Ok(()));
                        editor
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                if let Some(path) = &history {
                    match editor.load_history(path) {
                        Ok(()) => {}
                        Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not read the line history"),
                    }
                }
                for (prompt, reply) in inbox {
                    let read = match editor.readline(&prompt) {
                        Ok(line) => {
                            if !line.trim().is_empty() {
                                let _ = editor.add_history_entry(line.as_str());
                                if let Some(path) = &history {
                                    if let Err(e) = editor.append_history(path) {
                                        tracing::warn!(path = %path.display(), error = %e, "could not save the line history");
                                    }
                                }
                            }
                            Read::Line(line)
                        }
                        Err(ReadlineError::Interrupted) => Read::Interrupted,
                        Err(ReadlineError::Eof) => Read::Eof,
                        Err(e) => Read::Failed(e.to_string()),
                    };
                    let _ = reply.send(read);
                }
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                requests: Some(requests),
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(Failure::Io(std::io::Error::other(format!(
                "the line editor: {e}"
            )))),
            Err(_) => Err(Failure::Io(std::io::Error::other(
                "the line editor stopped at once",
            ))),
        }
    }

    /// The next line, read with `prompt` (plain, styled).
    async fn read_line(&mut self, prompt: (String, String)) -> Read {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .requests
            .as_ref()
            .is_some_and(|requests| requests.send((prompt, reply)).is_ok());
        if !sent {
            return Read::Eof;
        }
        answer.await.unwrap_or(Read::Eof)
    }

    /// Ends the editor's thread (it is waiting for the next request, not reading).
    fn close(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
