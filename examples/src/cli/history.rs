//! `history list|show|delete|export`, and the listings the interactive chat shares with
//! them.

use std::io::Write;

use bedrock_chat_core::{
    ChatId, ChatService, Conversation, ExportFormat, ListOptions, Message, Part, Role, UserId,
};
use futures::TryStreamExt;

use super::exit::Failure;
use super::output::{citation_lines, count, one_line, tool_line, Paint, Terminal};
use super::HistoryCommand;

/// Messages read per store call when showing a conversation.
const PAGE: u32 = 200;

/// Runs a `history` command.
///
/// # Errors
/// A [`Failure`] whose exit code says what went wrong.
pub async fn run(
    service: &ChatService,
    user: &UserId,
    command: HistoryCommand,
    terminal: &Terminal,
) -> Result<(), Failure> {
    let store = service.store();
    let mut out = std::io::stdout().lock();
    match command {
        HistoryCommand::List { limit, json } => {
            let page = store
                .list_conversations(user, ListOptions::first(limit))
                .await?;
            if json {
                serde_json::to_writer(&mut out, &page.items).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            } else if page.items.is_empty() {
                terminal.note("no conversations yet");
            } else {
                print_list(&mut out, &page.items, terminal.out(), false)?;
                if page.next_cursor.is_some() {
                    terminal.note(&format!("more than {limit}: show more with --limit N"));
                }
            }
        }
        HistoryCommand::Show { id } => {
            let conversation = store.get_conversation(user, id).await?;
            let messages = all_messages(service, user, id).await?;
            print_conversation(&mut out, &conversation, &messages, terminal.out())?;
        }
        HistoryCommand::Delete { id } => {
            // Through the service: the attachments in the blob store go too.
            service.delete_conversation(user, id).await?;
            terminal.note(&format!("deleted conversation {id}"));
        }
        HistoryCommand::Export { id, format, output } => match output {
            Some(path) => {
                let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
                export(service, user, id, format.into(), &mut file).await?;
                file.flush()?;
                terminal.note(&format!("wrote {}", path.display()));
            }
            None => export(service, user, id, format.into(), &mut out).await?,
        },
    }
    out.flush()?;
    Ok(())
}

/// Writes the export of conversation `id` to `out`, a page at a time.
///
/// # Errors
/// [`Failure::Chat`] for an unknown conversation or a store failure; [`Failure::Io`].
pub async fn export(
    service: &ChatService,
    user: &UserId,
    id: ChatId,
    format: ExportFormat,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut pieces =
        crate::export::export_conversation(service.store().as_ref(), user, id, format).await?;
    while let Some(piece) = pieces.try_next().await? {
        out.write_all(piece.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// Every message of conversation `id`, oldest first.
///
/// # Errors
/// The store's.
pub async fn all_messages(
    service: &ChatService,
    user: &UserId,
    id: ChatId,
) -> Result<Vec<Message>, Failure> {
    let mut messages = Vec::new();
    let mut options = ListOptions::first(PAGE);
    loop {
        let page = service.store().list_messages(user, id, options).await?;
        messages.extend(page.items);
        match page.next_cursor {
            Some(cursor) => options = ListOptions::after(PAGE, cursor),
            None => return Ok(messages),
        }
    }
}

/// A table of conversations: id, last activity, messages, title; numbered from 1 when
/// `numbered` (the interactive chat's `/open N`).
///
/// # Errors
/// Writing failed.
pub fn print_list(
    out: &mut impl Write,
    conversations: &[Conversation],
    paint: Paint,
    numbered: bool,
) -> std::io::Result<()> {
    for (i, c) in conversations.iter().enumerate() {
        let messages = count(c.message_count, "msg");
        if numbered {
            // Fits 100 columns with the whole id (for `--chat ID`).
            let when = c.updated_at.format("%b %d %H:%M");
            let title = one_line(&c.title, 32);
            writeln!(
                out,
                "{}  {}  {}  {:>7}  {}",
                paint.bold(&format!("{:>2}", i + 1)),
                title_padded(&title, paint),
                paint.dim(&when.to_string()),
                messages,
                paint.dim(&c.id.to_string()),
            )?;
        } else {
            let when = c.updated_at.format("%Y-%m-%d %H:%M");
            let title = one_line(&c.title, 80);
            writeln!(
                out,
                "{}  {}  {:>8}  {}",
                c.id,
                paint.dim(&when.to_string()),
                messages,
                paint.bold(&title)
            )?;
        }
    }
    Ok(())
}

fn title_padded(title: &str, paint: Paint) -> String {
    let width = title.chars().count();
    format!(
        "{}{}",
        paint.bold(title),
        " ".repeat(32usize.saturating_sub(width))
    )
}

/// A conversation as a terminal reads it: its title and facts, then each message under
/// its author.
///
/// # Errors
/// Writing failed.
pub fn print_conversation(
    out: &mut impl Write,
    conversation: &Conversation,
    messages: &[Message],
    paint: Paint,
) -> std::io::Result<()> {
    writeln!(out, "{}", paint.bold(&one_line(&conversation.title, 200)))?;
    writeln!(
        out,
        "{}",
        paint.dim(&format!(
            "chat {} · {} · started {}",
            conversation.id,
            count(conversation.message_count, "message"),
            conversation.created_at.format("%Y-%m-%d %H:%M UTC")
        ))
    )?;
    if let Some(prompt) = &conversation.system_prompt {
        writeln!(out, "{} {}", paint.dim("system:"), one_line(prompt, 200))?;
    }
    for message in messages {
        writeln!(out)?;
        print_message(out, message, paint)?;
    }
    Ok(())
}

/// One message under its author and time.
///
/// # Errors
/// Writing failed.
pub fn print_message(out: &mut impl Write, message: &Message, paint: Paint) -> std::io::Result<()> {
    let when = message.created_at.format("%H:%M");
    let who = match message.role {
        Role::User => paint.green("you"),
        Role::Assistant => paint.cyan(message.model.as_deref().unwrap_or("assistant")),
    };
    writeln!(out, "{} {}", who, paint.dim(&format!("· {when}")))?;
    for part in &message.parts {
        match part {
            Part::Reasoning { text, .. } => {
                let text = format!("thinking: {}", text.trim_end_matches('\n'));
                writeln!(out, "{}", paint.dim(&text))?;
            }
            Part::ToolResult {
                tool_use_id,
                output,
                is_error,
            } => {
                let call = message.parts.iter().find_map(|p| match p {
                    Part::ToolUse { id, name, input } if id == tool_use_id => Some((name, input)),
                    _ => None,
                });
                let (name, input) =
                    call.map_or(("?", &serde_json::Value::Null), |(n, i)| (n.as_str(), i));
                writeln!(out, "{}", tool_line(paint, name, input, output, *is_error))?;
            }
            _ => {}
        }
    }
    writeln!(out, "{}", message.content.trim_end_matches('\n'))?;
    for line in citation_lines(paint, &message.parts) {
        writeln!(out, "{line}")?;
    }
    for line in message
        .parts
        .iter()
        .filter_map(bedrock_chat_core::parts::describe)
    {
        writeln!(out, "{}", paint.dim(&format!("[attached: {line}]")))?;
    }
    Ok(())
}
