//! The example CLI: chat in a terminal, ask one-shot questions from scripts, manage the
//! history, make personas. It runs on the same [`BackendArgs`] and [`backends::service`]
//! as the server, so both see the same store; every operation is a
//! [`ChatService`](bedrock_chat_core::ChatService) or
//! [`HistoryStore`](bedrock_chat_core::HistoryStore) call.
//!
//! - [`exit`]: the exit codes and the one mapping from errors to them;
//! - [`output`]: colours, the spinner, and the printing of a streamed answer;
//! - [`ask`]: `ask` and `persona`, one-shot;
//! - [`attach`]: files attached to a message;
//! - [`history`]: `history list|show|delete|export`;
//! - [`repl`]: `chat`, the interactive loop.

pub mod ask;
pub mod attach;
pub mod exit;
pub mod history;
pub mod output;
pub mod repl;

use std::path::PathBuf;
use std::process::ExitCode;

use bedrock_chat_core::{ChatId, ExportFormat, UserId, AUDIT_TARGET};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::backends;
use crate::config::{self, BackendArgs};
use crate::telemetry;
use exit::Failure;
use output::Terminal;

/// The exit codes, as `--help` lists them.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  an unexpected failure (writing the output, a store that does not support the operation)
  2  bad input: an empty question, a malformed or unknown conversation id, a bad flag or URL,
     a file that cannot be attached (unknown extension, unreadable, over the model's limits)
  3  rate limited: over the request limit or token budget, or the model is throttling; retry later
  4  the model failed (nothing was stored)
  5  the store or the rate limiter is unavailable";

/// The CLI's command line.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "bedrock-chat",
    version,
    about = "Chat with a model on Amazon Bedrock in a terminal, script it, manage the history",
    long_about = "Chat with a model on Amazon Bedrock in a terminal, ask one-shot questions \
from scripts, and manage the conversation history, on the same store as the bedrock-chat \
server (by default the SQLite file bedrock-chat.db in the working directory).\n\n\
With no command it starts the interactive chat. Every flag can also be set by its \
environment variable or in a .env file, and may be given before or after the command.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Store, limiter and model, as the server takes them.
    #[command(flatten)]
    pub backends: BackendArgs,

    /// Whose conversations these are. Default: the OS user name ($USER or $USERNAME).
    #[arg(long, env = "BEDROCK_CHAT_USER")]
    pub user: Option<String>,

    /// When to colour the output (`auto`: on a terminal, unless NO_COLOR is set).
    #[arg(long, value_enum, env = "BEDROCK_CHAT_COLOR", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// What to do; `chat` when none is given.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// When to colour the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The commands.
#[derive(Subcommand, Clone, Debug)]
pub enum Command {
    /// Chat interactively (the default): answers stream as they are written; /help lists the
    /// slash commands; Ctrl-C stops an answer (it is still saved), Ctrl-D leaves.
    Chat(ChatArgs),
    /// Ask one question and print the answer alone on stdout (diagnostics go to stderr).
    #[command(after_help = EXIT_CODES)]
    Ask(AskArgs),
    /// List, show, delete or export the conversations.
    #[command(subcommand)]
    History(HistoryCommand),
    /// Make a persona from a description (structured output), and start a conversation
    /// held with it.
    #[command(after_help = EXIT_CODES)]
    Persona(PersonaArgs),
}

/// `chat`.
#[derive(Args, Clone, Debug, Default)]
pub struct ChatArgs {
    /// Continue this conversation.
    #[arg(long, value_name = "ID")]
    pub chat: Option<ChatId>,

    /// The file that keeps the lines typed, across runs. Default:
    /// $XDG_DATA_HOME/bedrock-chat/history, else ~/.bedrock_chat_history.
    #[arg(long, env = "BEDROCK_CHAT_HISTORY_FILE", value_name = "PATH")]
    pub history_file: Option<PathBuf>,
}

/// `ask`.
#[derive(Args, Clone, Debug)]
pub struct AskArgs {
    /// The question; read from stdin when it is left out or is `-`.
    pub question: Option<String>,

    /// Continue this conversation (the answer sees what was said in it).
    #[arg(long, value_name = "ID")]
    pub chat: Option<ChatId>,

    /// A system prompt for this question (and, in a new conversation, for the ones after).
    #[arg(long, value_name = "PROMPT")]
    pub system: Option<String>,

    /// Print the whole reply as JSON (ids, both messages, usage) instead of its text.
    #[arg(long)]
    pub json: bool,

    /// Attach a file to the question (repeatable), its kind by its extension: images png,
    /// jpg, jpeg, gif, webp; documents pdf, csv, doc, docx, xls, xlsx, html, htm, txt, md
    /// (named after the file). At most 20 images of 3.75 MB and 5 documents of 4.5 MB.
    #[arg(long, value_name = "FILE")]
    pub attach: Vec<PathBuf>,
}

/// `persona`.
#[derive(Args, Clone, Debug)]
pub struct PersonaArgs {
    /// Who the persona is, in your words.
    pub description: String,

    /// Print the persona and the conversation id as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `history …`.
#[derive(Subcommand, Clone, Debug)]
pub enum HistoryCommand {
    /// The conversations, newest activity first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// A conversation's messages, with their attachments (kind, format, name, size).
    Show {
        /// The conversation.
        id: ChatId,
    },
    /// Delete a conversation and its messages.
    Delete {
        /// The conversation.
        id: ChatId,
    },
    /// Write a conversation out as JSON or Markdown.
    Export {
        /// The conversation.
        id: ChatId,
        /// `json` or `markdown`.
        #[arg(long, short, value_enum, default_value_t = Format::Markdown)]
        format: Format,
        /// Write to this file instead of stdout.
        #[arg(long, short, value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

/// An export format, as the flag names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON document.
    Json,
    /// A Markdown transcript.
    Markdown,
}

impl From<Format> for ExportFormat {
    fn from(format: Format) -> Self {
        match format {
            Format::Json => ExportFormat::Json,
            Format::Markdown => ExportFormat::Markdown,
        }
    }
}

impl Cli {
    /// The clap command: every option may be given before or after the subcommand, and
    /// logs default to readable lines (a terminal program's stderr).
    pub fn clap_command() -> clap::Command {
        Self::command()
            .mut_args(|arg| {
                if arg.is_positional() {
                    arg
                } else {
                    arg.global(true)
                }
            })
            .mut_arg("log_format", |arg| arg.default_value("pretty"))
    }

    /// Parses the process's arguments (exiting with code 2 and a usage message when they
    /// are wrong, as clap does).
    pub fn parse_args() -> Self {
        let matches = Self::clap_command().get_matches();
        match Self::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        }
    }

    /// The user: `--user`, else the OS user name.
    ///
    /// # Errors
    /// [`Failure::Usage`] when there is neither, or the name is not a valid user id.
    pub fn user(&self) -> Result<UserId, Failure> {
        let name = match &self.user {
            Some(name) => name.clone(),
            None => os_user_name()
                .ok_or_else(|| Failure::Usage("no user name found: give --user NAME".into()))?,
        };
        UserId::new(name).map_err(|e| Failure::Usage(format!("--user: {}", e.reason)))
    }
}

/// The OS user name: from the environment as the shell sets it, else from the OS's
/// account database (a process started by cron or in a container may have no `$USER`).
fn os_user_name() -> Option<String> {
    ["USER", "USERNAME", "LOGNAME"]
        .into_iter()
        .filter_map(|var| std::env::var(var).ok())
        .chain(whoami::fallible::username().ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
}

/// The CLI program: `.env`, arguments, logs, then the command. Returns the exit code.
pub async fn main() -> ExitCode {
    if let Err(e) = config::load_dotenv() {
        eprintln!("error: .env: {e}");
        return ExitCode::from(exit::BAD_INPUT);
    }
    let cli = Cli::parse_args();
    // Logs go to stderr, warnings only unless RUST_LOG says otherwise: stdout is the
    // conversation. A failed model call is the error the user is shown already, so its
    // audit event and the AWS SDK's warnings about where it looked for credentials are
    // left out.
    let filter = format!("warn,aws_config=error,{AUDIT_TARGET}=error");
    telemetry::init_with_default(cli.backends.log_format, &filter);
    let terminal = Terminal::detect(cli.color);
    match run(cli, &terminal).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(&terminal),
    }
}

async fn run(cli: Cli, terminal: &Terminal) -> Result<(), Failure> {
    let user = cli.user()?;
    // The reasoning budget goes with each send rather than into the service's policy (a
    // send can add a budget to the policy's but not take it away), so that the chat's
    // `/reasoning off` can turn it off. It is checked with the other settings first.
    backends::policy(&cli.backends)?;
    let mut backend_args = cli.backends.clone();
    let reasoning = backend_args.reasoning_budget.take();
    let service = backends::service(&backend_args).await?;
    let result = match cli
        .command
        .clone()
        .unwrap_or(Command::Chat(ChatArgs::default()))
    {
        Command::Chat(args) => repl::run(&service, &user, args, reasoning, terminal).await,
        Command::Ask(args) => ask::ask(&service, &user, args, reasoning, terminal).await,
        Command::Persona(args) => ask::persona(&service, &user, args, terminal).await,
        Command::History(command) => history::run(&service, &user, command, terminal).await,
    };
    // A streamed reply still being generated (an answer stopped with Ctrl-C) is stored
    // before the process exits.
    service.shutdown().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let matches = Cli::clap_command().try_get_matches_from(args)?;
        Cli::from_arg_matches(&matches)
    }

    #[test]
    fn backend_flags_are_taken_before_or_after_the_command() {
        let before = parse(&["cli", "--store", "memory", "ask", "hi"]).unwrap();
        let after = parse(&["cli", "ask", "--store", "memory", "--user", "ada", "hi"]).unwrap();
        assert_eq!(before.backends.store, "memory");
        assert_eq!(after.backends.store, "memory");
        assert_eq!(after.user.as_deref(), Some("ada"));
        assert!(
            matches!(after.command, Some(Command::Ask(AskArgs { question: Some(ref q), .. })) if q == "hi")
        );
    }

    #[test]
    fn no_command_means_chat_and_logs_default_to_pretty() {
        let cli = parse(&["cli"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.backends.log_format, config::LogFormat::Pretty);
        assert_eq!(cli.backends.store, "sqlite:bedrock-chat.db");
    }

    #[test]
    fn a_malformed_chat_id_is_a_usage_error() {
        let error = parse(&["cli", "ask", "--chat", "not-a-uuid", "hi"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn history_export_takes_a_format() {
        let cli = parse(&[
            "cli",
            "history",
            "export",
            "0192f8a0-0000-7000-8000-000000000000",
            "--format",
            "json",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::History(HistoryCommand::Export {
                format: Format::Json,
                ..
            }))
        ));
    }

    #[test]
    fn the_user_defaults_to_the_flag_then_the_os_name() {
        let cli = parse(&["cli", "--user", "grace"]).unwrap();
        assert_eq!(cli.user().unwrap().as_str(), "grace");
        let cli = parse(&["cli", "--user", ""]).unwrap();
        assert!(matches!(cli.user(), Err(Failure::Usage(_))));
    }
}
