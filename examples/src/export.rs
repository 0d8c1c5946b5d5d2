//! A conversation's export as the hosts give it (the API's `export` and the CLI's
//! `history export`): the library's
//! [`export_conversation`](bedrock_chat_core::HistoryStoreExt::export_conversation) shape,
//! with attachments shown as the API shows them: JSON parts without their bytes (a
//! format, a size and a download `url`), and their names in the Markdown transcript.
//!
//! A plain-text message is written byte for byte as the library writes it, so an export
//! of a conversation without attachments is the same either way.

use bedrock_chat_core::history_ext::ExportStream;
use bedrock_chat_core::{
    ChatId, Conversation, ExportFormat, HistoryStore, ListOptions, Message, Part, Role, StoreError,
    UserId,
};
use futures::stream::{self, StreamExt};

use crate::http::views::PartView;

/// Messages read per store call while exporting.
const EXPORT_PAGE: u32 = 200;

/// Exports a whole conversation a page of messages at a time, as a stream of text pieces.
///
/// # Errors
/// [`StoreError::NotFound`] at once when the user has no such conversation; a store
/// failure while paging ends the stream with that error.
pub async fn export_conversation<'a>(
    store: &'a dyn HistoryStore,
    user: &'a UserId,
    chat_id: ChatId,
    format: ExportFormat,
) -> Result<ExportStream<'a>, StoreError> {
    let conversation = store.get_conversation(user, chat_id).await?;
    let head = match format {
        ExportFormat::Json => json_head(&conversation)?,
        ExportFormat::Markdown => markdown_head(&conversation),
    };
    let pages = stream::try_unfold(
        (Some(ListOptions::first(EXPORT_PAGE)), true),
        move |(options, mut first)| async move {
            let Some(options) = options else {
                return Ok(None);
            };
            let page = store.list_messages(user, chat_id, options).await?;
            let mut out = String::new();
            for message in &page.items {
                match format {
                    ExportFormat::Json => {
                        if !first {
                            out.push(',');
                        }
                        out.push_str(&json_message(message)?);
                    }
                    ExportFormat::Markdown => markdown_message(&mut out, message),
                }
                first = false;
            }
            let next = page
                .next_cursor
                .map(|cursor| ListOptions::after(EXPORT_PAGE, cursor));
            Ok(Some((out, (next, first))))
        },
    );
    let tail = match format {
        ExportFormat::Json => "]}\n",
        ExportFormat::Markdown => "",
    };
    Ok(stream::once(async move { Ok(head) })
        .chain(pages.filter(|piece| {
            let keep = !matches!(piece, Ok(text) if text.is_empty());
            async move { keep }
        }))
        .chain(stream::once(async move { Ok(tail.to_owned()) }))
        .boxed())
}

fn encoding_failed(error: serde_json::Error) -> StoreError {
    StoreError::Backend {
        backend: "export",
        source: Box::new(error),
    }
}

fn json_head(conversation: &Conversation) -> Result<String, StoreError> {
    let conversation = serde_json::to_string(conversation).map_err(encoding_failed)?;
    Ok(format!("{{\"conversation\":{conversation},\"messages\":["))
}

/// The message as stored, its parts (if any) as the API shows them.
fn json_message(message: &Message) -> Result<String, StoreError> {
    let Some(parts) = PartView::of_message(message.id, &message.parts) else {
        return serde_json::to_string(message).map_err(encoding_failed);
    };
    let mut value = serde_json::to_value(message).map_err(encoding_failed)?;
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "parts".to_owned(),
            serde_json::to_value(parts).map_err(encoding_failed)?,
        );
    }
    serde_json::to_string(&value).map_err(encoding_failed)
}

fn markdown_head(conversation: &Conversation) -> String {
    let mut out = format!("# {}\n\n", one_line(&conversation.title));
    out.push_str(&format!(
        "- conversation: `{}`\n- created: {}\n- messages: {}\n",
        conversation.id,
        conversation.created_at.to_rfc3339(),
        conversation.message_count
    ));
    if let Some(prompt) = &conversation.system_prompt {
        out.push_str("\n**System prompt**\n\n");
        for line in prompt.lines() {
            out.push_str("> ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn markdown_message(out: &mut String, message: &Message) {
    let who = match message.role {
        Role::User => "User".to_owned(),
        Role::Assistant => match &message.model {
            Some(model) => format!("Assistant ({model})"),
            None => "Assistant".to_owned(),
        },
    };
    out.push_str(&format!(
        "\n---\n\n**{who}** · {}\n\n",
        message.created_at.to_rfc3339()
    ));
    out.push_str(&message.content);
    if !message.content.ends_with('\n') {
        out.push('\n');
    }
    let attachments: Vec<String> = message.parts.iter().filter_map(describe).collect();
    if !attachments.is_empty() {
        out.push_str("\n**Attachments**\n\n");
        for line in attachments {
            out.push_str("- ");
            out.push_str(&line);
            out.push('\n');
        }
    }
}

/// An attachment in a line: `image (png, 1234 bytes)`, `document “notes” (md, 56 bytes)`.
pub fn describe(part: &Part) -> Option<String> {
    let size = part.binary().map_or(0, |b| b.len());
    match part {
        Part::Image { format, .. } => Some(format!("image ({format}, {size} bytes)")),
        Part::Document { format, name, .. } => Some(format!(
            "document “{}” ({format}, {size} bytes)",
            one_line(name)
        )),
        _ => None,
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}
