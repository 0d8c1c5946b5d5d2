//! A conversation's export as the hosts give it (the API's `export` and the CLI's
//! `history export`): the library's
//! [`export_conversation_with`](bedrock_chat_core::HistoryStoreExt::export_conversation_with),
//! each message of a JSON export with its parts as the API shows them (a format, a size
//! and a download `url`, never the bytes). A plain-text message is written as the library
//! writes it, and Markdown transcripts name attachments either way.

use bedrock_chat_core::history_ext::ExportStream;
use bedrock_chat_core::{
    ChatId, ExportFormat, HistoryStore, HistoryStoreExt, Message, StoreError, UserId,
};

use crate::http::views::PartView;

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
    store
        .export_conversation_with(user, chat_id, format, &message_json)
        .await
}

/// The message as stored, its parts (if any) as the API shows them.
fn message_json(message: &Message) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = serde_json::to_value(message)?;
    if let (Some(parts), Some(object)) = (
        PartView::of_message(message.id, &message.parts),
        value.as_object_mut(),
    ) {
        object.insert("parts".to_owned(), serde_json::to_value(parts)?);
    }
    Ok(value)
}
