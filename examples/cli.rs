//! The example CLI: chat with the model in a terminal (answers streamed, line editing and
//! history, slash commands), ask one-shot questions from scripts with exit codes to branch
//! on, and list, show, delete or export the history, on the same store as the server. With
//! no flags it uses the server's defaults (SQLite file `bedrock-chat.db`, the offline
//! model): `cargo run --example cli` (`-- --help` lists the commands, flags and exit codes;
//! `cargo install --path examples --example cli` installs it).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bedrock_chat_examples::cli::main().await
}
