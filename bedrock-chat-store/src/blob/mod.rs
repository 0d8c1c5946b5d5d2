//! [`BlobStore`] backends: where attachment bytes over
//! [`ChatPolicy::inline_attachment_bytes`](bedrock_chat_core::ChatPolicy::inline_attachment_bytes)
//! live, so that a message in the history store keeps only a small
//! [`BlobRef`](bedrock_chat_core::BlobRef).
//!
//! | backend | feature | use it for |
//! |---|---|---|
//! | [`InMemoryBlobStore`] | always | tests, demos, beside an in-memory history |
//! | [`FilesystemBlobStore`] | always | one machine, beside a SQLite history |
//! | `S3BlobStore` | `s3` | many servers or Lambda, beside DynamoDB or PostgreSQL |
//!
//! Every backend passes the same conformance suite
//! ([`blob_store_conformance!`](bedrock_chat_core::blob_store_conformance)) and refuses a
//! key outside the key alphabet (`/`-separated segments of `A-Z a-z 0-9 . _ -`, none
//! empty, `.` or `..`, at most 1,024 bytes) with `StoreError::InvalidInput`.
//! [`blob_from_url`] opens one from a URL ([`url`]).
//!
//! [`BlobStore`]: bedrock_chat_core::BlobStore

mod filesystem;
mod key;
mod memory;
#[cfg(feature = "s3")]
pub mod s3;
pub mod url;

pub use filesystem::FilesystemBlobStore;
pub use key::MAX_KEY_BYTES;
pub use memory::InMemoryBlobStore;
#[cfg(feature = "s3")]
pub use s3::{S3BlobStore, S3Config};
pub use url::{blob_from_url, BlobUrl, BlobUrlError};
