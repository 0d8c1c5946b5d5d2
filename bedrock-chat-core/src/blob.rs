//! [`BlobStore`]: where large attachment bytes live, so that a history store keeps only a
//! small [`BlobRef`] in the message (DynamoDB's 400 KB item limit and Redis memory are then
//! never the limit).
//!
//! [`ChatService`](crate::ChatService) moves attachments over
//! [`ChatPolicy::inline_attachment_bytes`](crate::ChatPolicy::inline_attachment_bytes) into
//! the blob store it was built with, and reads them back (checking their SHA-256) when a
//! later turn sends them to the model. Implementations: `bedrock-chat-store`'s in-memory,
//! filesystem and S3 blob stores.

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::error::{Resource, StoreError};
use crate::ids::{ChatId, MessageId};
use crate::parts::{Binary, BlobRef, Part};

/// Bytes by key. Keys are `/`-separated paths of ASCII letters, digits, `-`, `_` and `.`
/// (see [`attachment_key`]).
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// The backend's name, for errors and logs (`memory`, `filesystem`, `s3`).
    fn backend(&self) -> &'static str;

    /// Stores `bytes` under `key`, replacing what was there.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Backend`] when the backend fails.
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError>;

    /// The bytes under `key`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] (resource [`Resource::Attachment`]) when there are none.
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;

    /// Deletes every blob whose key starts with `prefix`; answers how many.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Backend`] when the backend fails.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError>;
}

/// The key prefix of a conversation's attachments: `attachments/{chat_id}/`.
pub fn conversation_prefix(chat_id: ChatId) -> String {
    format!("attachments/{chat_id}/")
}

/// The key of part `index` of message `message` in `chat_id`:
/// `attachments/{chat_id}/{message}/{index}`.
pub fn attachment_key(chat_id: ChatId, message: MessageId, index: usize) -> String {
    format!("{}{message}/{index}", conversation_prefix(chat_id))
}

/// The SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Moves attachment bytes of `parts` into `blobs` under [`attachment_key`], leaving a
/// [`BlobRef`] in each part moved, so that at most `threshold` bytes stay in the message
/// (parts are kept in order while they fit). Parts already in the blob store are left as
/// they are.
///
/// # Errors
/// The blob store's error; `parts` is then unchanged from the failing part on.
pub async fn offload(
    blobs: &dyn BlobStore,
    chat_id: ChatId,
    message: MessageId,
    parts: &mut [Part],
    threshold: u64,
) -> Result<(), StoreError> {
    let mut inline = 0u64;
    for (index, part) in parts.iter_mut().enumerate() {
        let Some(binary) = part.binary_mut() else {
            continue;
        };
        let Binary::Bytes(bytes) = binary else {
            continue;
        };
        let size = bytes.len() as u64;
        if inline.saturating_add(size) <= threshold {
            inline += size;
            continue;
        }
        let key = attachment_key(chat_id, message, index);
        let blob = BlobRef {
            key: key.clone(),
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        };
        blobs.put(&key, bytes.clone()).await?;
        *binary = Binary::Blob(blob);
    }
    Ok(())
}

/// Reads back the bytes of every [`BlobRef`] in `parts`, checking size and SHA-256.
///
/// # Errors
/// The blob store's error; [`StoreError::NotFound`] when a blob is missing, or
/// [`StoreError::Backend`] when its bytes are not the ones stored.
pub async fn resolve(blobs: Option<&dyn BlobStore>, parts: &mut [Part]) -> Result<(), StoreError> {
    for part in parts.iter_mut() {
        let Some(binary) = part.binary_mut() else {
            continue;
        };
        let Binary::Blob(blob) = binary else {
            continue;
        };
        let Some(blobs) = blobs else {
            return Err(StoreError::not_found(Resource::Attachment));
        };
        let bytes = blobs.get(&blob.key).await?;
        if bytes.len() as u64 != blob.size || sha256_hex(&bytes) != blob.sha256 {
            return Err(StoreError::Backend {
                backend: blobs.backend(),
                source: format!("blob {} does not hold the bytes that were stored", blob.key)
                    .into(),
            });
        }
        *binary = Binary::Bytes(bytes);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn keys_are_scoped_by_conversation() {
        let chat = ChatId::new();
        let message = MessageId::new();
        let key = attachment_key(chat, message, 2);
        assert!(key.starts_with(&conversation_prefix(chat)));
        assert!(key.ends_with("/2"));
    }
}
