//! [`InMemoryBlobStore`]: blobs in process memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bedrock_chat_core::{BlobStore, Resource, StoreError};
use bytes::Bytes;

use super::key::{check_key, check_prefix};

/// A [`BlobStore`] in process memory: for tests, demos and single-process hosts whose
/// history is in memory too. Everything is lost when the process ends.
///
/// Cloning gives another handle to the same blobs.
///
/// ```
/// use bedrock_chat_core::BlobStore;
/// use bedrock_chat_store::InMemoryBlobStore;
/// use bytes::Bytes;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bedrock_chat_core::StoreError> {
/// let blobs = InMemoryBlobStore::new();
/// blobs.put("attachments/c1/m1/0", Bytes::from_static(b"\x89PNG...")).await?;
/// assert_eq!(blobs.get("attachments/c1/m1/0").await?.len(), 7);
/// assert_eq!(blobs.delete_prefix("attachments/c1/").await?, 1);
/// assert!(blobs.is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct InMemoryBlobStore {
    blobs: Arc<Mutex<BTreeMap<String, Bytes>>>,
}

impl InMemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many blobs it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds no blob.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The keys it holds, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    // Each operation is one map call under the lock, which cannot leave the map half
    // changed: a poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Bytes>> {
        self.blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl BlobStore for InMemoryBlobStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        check_key(key)?;
        self.lock().insert(key.to_owned(), bytes);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        check_key(key)?;
        self.lock()
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::not_found(Resource::Attachment))
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        check_prefix(prefix)?;
        let mut blobs = self.lock();
        let doomed: Vec<String> = blobs
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &doomed {
            blobs.remove(key);
        }
        Ok(doomed.len() as u64)
    }
}
