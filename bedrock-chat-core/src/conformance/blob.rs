//! The [`BlobStore`] conformance suite: round trips of every byte value, empty and
//! multi-megabyte blobs, overwrites, missing keys, `delete_prefix` counting exactly what
//! it deletes, and the key alphabet every backend refuses to leave.
//!
//! Each case writes under its own random top-level key, so backends can share one bucket
//! or directory between cases; a backend that made something for one case (a bucket, a
//! directory) removes it in [`BlobUnderTest::with_teardown`], which every case runs when
//! it passes.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::random_key;
use crate::blob::{attachment_key, conversation_prefix, BlobStore};
use crate::error::{Resource, StoreError};
use crate::ids::{ChatId, MessageId};

/// A blob store under test, and how to clean up after it.
pub struct BlobUnderTest {
    /// The store.
    pub store: Arc<dyn BlobStore>,
    teardown: Option<Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>>,
}

impl BlobUnderTest {
    /// Wraps a store that needs no cleaning up.
    pub fn new(store: impl BlobStore) -> Self {
        Self {
            store: Arc::new(store),
            teardown: None,
        }
    }

    /// Runs `teardown` at the end of every case that passes (a failing case leaves what
    /// it wrote, to look at).
    pub fn with_teardown<F, Fut>(mut self, teardown: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.teardown = Some(Box::new(move || Box::pin(teardown())));
        self
    }

    /// Runs the teardown, if any.
    pub async fn finish(self) {
        if let Some(teardown) = self.teardown {
            teardown().await;
        }
    }
}

/// Makes the [`BlobUnderTest`] of one case.
#[doc(hidden)]
pub trait MakeBlobStore {
    /// Makes the store under test.
    fn make(&self) -> BoxFuture<'static, BlobUnderTest>;
}

impl<F, Fut> MakeBlobStore for F
where
    F: Fn() -> Fut,
    Fut: Future<Output = BlobUnderTest> + Send + 'static,
{
    fn make(&self) -> BoxFuture<'static, BlobUnderTest> {
        Box::pin(self())
    }
}

/// Expands into one `#[tokio::test]` per blob store conformance case, each calling
/// `$make().await` for a [`BlobUnderTest`].
///
/// ```no_run
/// // tests/blob.rs of a store crate
/// use bedrock_chat_core::conformance::blob::BlobUnderTest;
/// use bedrock_chat_store::InMemoryBlobStore;
///
/// async fn memory() -> BlobUnderTest {
///     BlobUnderTest::new(InMemoryBlobStore::new())
/// }
/// bedrock_chat_core::blob_store_conformance!(memory);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! blob_store_conformance {
    ($make:path) => {
        $crate::__conformance_cases!(blob, $make;
            blob_backend_has_a_name,
            put_then_get_returns_every_byte_value,
            empty_and_one_byte_blobs_round_trip,
            a_multi_megabyte_blob_round_trips,
            put_overwrites_what_was_there,
            concurrent_overwrites_leave_one_whole_value,
            concurrent_puts_to_different_keys_all_land,
            get_of_a_missing_key_is_not_found_attachment,
            delete_prefix_deletes_exactly_the_keys_under_it_and_counts_them,
            delete_prefix_is_idempotent,
            deleting_a_conversations_attachments_leaves_other_conversations,
            keys_outside_the_key_alphabet_are_refused,
        );
    };
}

/// Every byte value, forwards then backwards, then a few thousand bytes of a
/// deterministic pseudo-random sequence.
fn every_byte_value() -> Bytes {
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend((0..=255u8).rev());
    bytes.extend(pseudo_random(4096, 7));
    Bytes::from(bytes)
}

/// `len` bytes of a linear congruential sequence from `seed`: not compressible, not
/// repeating within a blob, the same on every run.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

async fn put(store: &dyn BlobStore, key: &str, bytes: impl Into<Bytes>) {
    store
        .put(key, bytes.into())
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

async fn get(store: &dyn BlobStore, key: &str) -> Bytes {
    store
        .get(key)
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
}

fn assert_not_found(result: Result<Bytes, StoreError>, key: &str) {
    match result {
        Err(StoreError::NotFound {
            resource: Resource::Attachment,
        }) => {}
        Err(other) => panic!("get {key}: expected NotFound(Attachment), got {other:?}"),
        Ok(bytes) => panic!(
            "get {key}: expected NotFound(Attachment), got {} bytes",
            bytes.len()
        ),
    }
}

/// Asserts `a == b` without printing megabytes when they differ.
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(at) = got.iter().zip(want).position(|(g, w)| g != w) {
        panic!(
            "{what}: byte {at} differs ({:#04x}, want {:#04x})",
            got[at], want[at]
        );
    }
}

/// The backend has a name for errors and logs.
pub async fn blob_backend_has_a_name(make: &impl MakeBlobStore) {
    let under_test = make.make().await;
    let name = under_test.store.backend();
    assert!(!name.is_empty(), "an empty backend name");
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "{name}: lower-case letters, digits and `-`"
    );
    under_test.finish().await;
}

/// Bytes of every value come back exactly as they went in.
pub async fn put_then_get_returns_every_byte_value(make: &impl MakeBlobStore) {
    let under_test = make.make().await;
    let store = under_test.store.as_ref();
    let key = format!("{}/every-byte.bin", random_key());
    let bytes = every_byte_value();
    put(store, &key, bytes.clone()).await;
    assert_same_bytes(&get(store, &key).await, &bytes, &key);
    // Read twice: a read does not consume the blob.
    assert_same_bytes(&get(store, &key).await, &bytes, &key);
    under_test.finish().await;
}

/// An empty blob and a one-byte blob are blobs like any other: found, and of that size.
pub async fn empty_and_one_byte_blobs_round_trip(make: &impl MakeBlobStore) {
    let under_test = make.make().await;
    let store = under_test.store.as_ref();
    let root = random_key();
    let (empty, one) = (format!("{root}/empty"), format!("{root}/one"));
    put(store, &empty, Bytes::new()).await;
    put(store, &one, vec![0u8]).await;
    assert!(get(store, &empty).await.is_empty(), "{empty}");
    assert_eq!(get(store, &one).await.as_ref(), [0u8], "{one}");
    under_test.finish().await;
}

/// A blob of several megabytes (larger than any single network buffer) round-trips.
pub async fn a_multi_megabyte_blob_round_trips(make: &impl MakeBlobStore) {
    let under_test = make.make().await;
    let store = under_test.store.as_ref();
    let key = format!("{}/large.bin", random_key());
    let bytes = Bytes::from(pseudo_random(5 * 1024 * 1024 + 3, 11));
    put(store, &key, bytes.clone()).await;
    assert_same_bytes(&get(store, &key).await, &bytes, &key);
    under_test.finish().await;
}

/// A put replaces what was under the key, whether the new bytes are shorter or longer.
pub async fn put_overwrites_what_was_there(make: &impl MakeBlobStore) {
    let under_test = make.make().await;
    let store = under_test.store.as_ref();
    let key = format!("{}/overwritten", random_key());
    put(store, &key, pseudo_random(100_000, 1)).await;
    let shorter = Bytes::from_static(b"short");
    put(store, &key, shorter.clone()).await;
    assert_eq!(get(store, &key).await, shorter);
    let longer = Bytes::from(pseudo_random(300_000, 2));
    put(store, &key, longer.clone()).await;
    assert_same_bytes(&get(store, &key).await, &longer, &key);
    under_test.finish().await;
}

/// Many puts of different bytes to one key at once leave exactly one of them, whole: a
/// reader never sees a mix or a torn write.
pub async fn concurrent_overwrites_leave_one_whole_value(make: &impl MakeBlobStore) {
    let under_test = make.make().await;
    let key = format!("{}/contended", random_key());
    let values: Vec<Bytes> = (0..8)
        .map(|i| Bytes::from(pseudo_random(200_000 + i, i as u64 + 100)))
        .collect();
    let tasks: Vec<_> = values
        .iter()
        .cloned()
        .map(|bytes| {
            let store = Arc::clone(&under_test.store);
            let key = key.clone();
            tokio::spawn(async move { store.put(&key, bytes).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("put");
    }
    let stored = get(under_test.store.as_ref(), &key).await;
    assert!(
        values.contains(&stored),
        "{key}: {} bytes that are none of the values written",
        stored.len()
    );
    under_test.finish().await;
}

/// Puts to different keys at once, sharing parent prefixes, all land.
pub async fn concurrent_puts_to_different_keys_all_land(make: &impl MakeBlobStore) {
    let under_test = make.make().await;
    let root = random_key();
    let keys: Vec<String> = (0..24).map(|i| format!("{root}/m{}/{i}", i % 3)).collect();
    let tasks: Vec<_> = keys
        .iter()
        .cloned()
        .map(|key| {
            let store = Arc::clone(&under_test.store);
            tokio::spawn(async move {
                let bytes = Bytes::from(key.clone().into_bytes());
                store.put(&key, bytes).await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("put");
    }
    for key in &keys {
        assert_eq!(get(under_test.store.as_ref(), key).await, key.as_bytes());
    }
    under_test.finish().await;
}

/// A key never written, one under a prefix that exists, and one whose name is a prefix
/// of a stored key are all `NotFound` of an attachment.
pub async fn get_of_a_missing_key_is_not_found_attachment(make: &impl MakeBlobStore) {
    let under_test = make.make().await;
    let store = under_test.store.as_ref();
    let root = random_key();
    put(store, &format!("{root}/dir/present"), b"x".to_vec()).await;
    for key in [
        format!("{}/never", random_key()),
        format!("{root}/dir/absent"),
        format!("{root}/dir/pres"),
        format!("{root}/dir/present/below"),
    ] {
        assert_not_found(store.get(&key).await, &key);
    }
    under_test.finish().await;
}

/// `delete_prefix` deletes every key that starts with the prefix, and only those, and
/// answers how many: `attachments/abc/` leaves `attachments/abcd/…`, while
/// `attachments/abc` (no slash: a prefix of the string, as S3 reads it) takes both.
pub async fn delete_prefix_deletes_exactly_the_keys_under_it_and_counts_them(
    make: &impl MakeBlobStore,
) {
    let under_test = make.make().await;
    let store = under_test.store.as_ref();
    let root = format!("{}/attachments", random_key());
    let under_abc = [
        format!("{root}/abc/m1/0"),
        format!("{root}/abc/m1/1"),
        format!("{root}/abc/m2/0"),
    ];
    let under_abcd = [format!("{root}/abcd/m1/0"), format!("{root}/abcd/x")];
    let elsewhere = [
        format!("{root}/ab"),
        format!("{root}/a/bc"),
        format!("{root}/xyz/abc/0"),
    ];
    for key in under_abc.iter().chain(&under_abcd).chain(&elsewhere) {
        put(store, key, key.clone().into_bytes()).await;
    }

    let deleted = store
        .delete_prefix(&format!("{root}/abc/"))
        .await
        .expect("delete abc/");
    assert_eq!(deleted, 3, "the three keys under abc/");
    for key in &under_abc {
        assert_not_found(store.get(key).await, key);
    }
    for key in under_abcd.iter().chain(&elsewhere) {
        assert_eq!(get(store, key).await, key.as_bytes(), "{key} must stay");
    }

    let deleted = store
        .delete_prefix(&format!("{root}/abc"))
        .await
        .expect("delete abc");
    assert_eq!(deleted, 2, "the two keys under abcd/, which start with abc");
    for key in &under_abcd {
        assert_not_found(store.get(key).await, key);
    }
    for key in &elsewhere {
        assert_eq!(get(store, key).await, key.as_bytes(), "{key} must stay");
    }

    // A blob can be written again where a prefix was deleted.
    put(store, &under_abc[0], b"again".to_vec()).await;
    assert_eq!(get(store, &under_abc[0]).await.as_ref(), b"again");
    under_test.finish().await;
}

/// Deleting a prefix again, or one that matches nothing, deletes nothing and is no error.
pub async fn delete_prefix_is_idempotent(make: &impl MakeBlobStore) {
    let under_test = make.make().await;
    let store = under_test.store.as_ref();
    let root = random_key();
    put(store, &format!("{root}/a/1"), b"1".to_vec()).await;
    put(store, &format!("{root}/a/2"), b"2".to_vec()).await;
    let prefix = format!("{root}/a/");
    assert_eq!(store.delete_prefix(&prefix).await.expect("first"), 2);
    assert_eq!(store.delete_prefix(&prefix).await.expect("again"), 0);
    let nothing = format!("{}/", random_key());
    assert_eq!(store.delete_prefix(&nothing).await.expect("nothing"), 0);
    under_test.finish().await;
}

/// With the keys the service writes ([`attachment_key`]): deleting one conversation's
/// prefix takes all its attachments and leaves another conversation's.
pub async fn deleting_a_conversations_attachments_leaves_other_conversations(
    make: &impl MakeBlobStore,
) {
    let under_test = make.make().await;
    let store = under_test.store.as_ref();
    let (mine, other) = (ChatId::new(), ChatId::new());
    let (first, second) = (MessageId::new(), MessageId::new());
    let keys = [
        attachment_key(mine, first, 0),
        attachment_key(mine, first, 1),
        attachment_key(mine, second, 0),
    ];
    let kept = attachment_key(other, first, 0);
    for key in keys.iter().chain([&kept]) {
        put(store, key, pseudo_random(1000, 3)).await;
    }
    let deleted = store
        .delete_prefix(&conversation_prefix(mine))
        .await
        .expect("delete the conversation's attachments");
    assert_eq!(deleted, 3);
    for key in &keys {
        assert_not_found(store.get(key).await, key);
    }
    assert_eq!(get(store, &kept).await.len(), 1000);
    store
        .delete_prefix(&conversation_prefix(other))
        .await
        .expect("clean up");
    under_test.finish().await;
}

/// Keys are `/`-separated segments of `A-Z a-z 0-9 . _ -`: a key or prefix that is
/// absolute, climbs (`..`), has an empty or `.` segment or any other character is refused
/// with `InvalidInput` naming `key` (or `prefix`), before anything is read or written.
pub async fn keys_outside_the_key_alphabet_are_refused(make: &impl MakeBlobStore) {
    let under_test = make.make().await;
    let store = under_test.store.as_ref();
    let root = random_key();
    let bad_keys = [
        String::new(),
        "/etc/passwd".to_owned(),
        "../escape".to_owned(),
        format!("{root}/../../escape"),
        format!("{root}/./x"),
        format!("{root}//x"),
        format!("{root}/x/"),
        format!("{root}/sp ace"),
        format!("{root}/back\\slash"),
        format!("{root}/nul\0"),
        format!("{root}/é"),
        format!("{root}/colon:x"),
        format!("{root}/{}", "k".repeat(1025)),
    ];
    for key in &bad_keys {
        match store.put(key, Bytes::from_static(b"x")).await {
            Err(StoreError::InvalidInput(invalid)) => assert_eq!(invalid.field, "key", "{key:?}"),
            other => panic!("put {key:?}: expected InvalidInput, got {other:?}"),
        }
        match store.get(key).await {
            Err(StoreError::InvalidInput(invalid)) => assert_eq!(invalid.field, "key", "{key:?}"),
            other => panic!("get {key:?}: expected InvalidInput, got {other:?}"),
        }
    }
    for prefix in [
        "/".to_owned(),
        "../".to_owned(),
        format!("{root}/../"),
        format!("{root}//"),
        format!("{root}/."),
        format!("{root}/a b/"),
    ] {
        match store.delete_prefix(&prefix).await {
            Err(StoreError::InvalidInput(invalid)) => {
                assert_eq!(invalid.field, "prefix", "{prefix:?}")
            }
            other => panic!("delete_prefix {prefix:?}: expected InvalidInput, got {other:?}"),
        }
    }
    // What is allowed: every character of the alphabet, dots inside a segment.
    let good = format!("{root}/A-Z_a-z.0-9/..dots../x.y");
    put(store, &good, b"ok".to_vec()).await;
    assert_eq!(get(store, &good).await.as_ref(), b"ok");
    assert_eq!(
        store
            .delete_prefix(&format!("{root}/A-"))
            .await
            .expect("delete"),
        1
    );
    under_test.finish().await;
}
