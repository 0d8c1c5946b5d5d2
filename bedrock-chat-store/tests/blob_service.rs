//! `ChatService` with a blob store, end to end on the real in-memory history and blob
//! stores (and, with the `sqlite` feature, a SQLite history beside a filesystem blob
//! store): large attachments are stored as `BlobRef`s and read back for the model and for
//! downloads, a blob that changed fails the send before any model call, and deletes take
//! the blobs with the history.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bedrock_chat_core::blob::{attachment_key, sha256_hex};
use bedrock_chat_core::{
    Binary, BlobRef, BlobStore, ChatError, ChatModel, ChatService, HistoryStore, ImageFormat,
    ListOptions, MessageId, ModelError, ModelRequest, ModelResponse, ModelStream, OfflineChatModel,
    Part, Resource, SendRequest, StoreError, UserId,
};
use bedrock_chat_store::{InMemoryBlobStore, InMemoryHistoryStore};
use bytes::Bytes;

/// The offline model, keeping every request it was sent.
#[derive(Clone, Default)]
struct RecordingModel {
    inner: Arc<OfflineChatModel>,
    requests: Arc<Mutex<Vec<ModelRequest>>>,
}

impl RecordingModel {
    fn requests(&self) -> Vec<ModelRequest> {
        self.requests.lock().expect("lock").clone()
    }

    fn record(&self, request: &ModelRequest) {
        self.requests.lock().expect("lock").push(request.clone());
    }
}

#[async_trait]
impl ChatModel for RecordingModel {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    async fn converse(&self, request: ModelRequest) -> Result<ModelResponse, ModelError> {
        self.record(&request);
        self.inner.converse(request).await
    }

    async fn converse_stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError> {
        self.record(&request);
        self.inner.converse_stream(request).await
    }
}

/// A png of `len` bytes: a real signature and header (64 x 64), then bytes that differ
/// from one call to the next as `seed` does.
fn png(len: usize, seed: u8) -> Bytes {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&13u32.to_be_bytes());
    bytes.extend_from_slice(b"IHDR");
    bytes.extend_from_slice(&64u32.to_be_bytes());
    bytes.extend_from_slice(&64u32.to_be_bytes());
    bytes.extend_from_slice(&[8, 2, 0, 0, 0]);
    bytes.extend_from_slice(&[0, 0, 0, 0]); // CRC, not checked by anyone here
    let mut state = u32::from(seed) + 1;
    while bytes.len() < len {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        bytes.push((state >> 16) as u8);
    }
    Bytes::from(bytes)
}

fn alice() -> UserId {
    UserId::new("alice").expect("a valid user id")
}

struct Setup {
    history: InMemoryHistoryStore,
    blobs: InMemoryBlobStore,
    model: RecordingModel,
    service: ChatService,
}

fn setup() -> Setup {
    let history = InMemoryHistoryStore::new();
    let blobs = InMemoryBlobStore::new();
    let model = RecordingModel::default();
    let service = ChatService::builder(Arc::new(model.clone()), Arc::new(history.clone()))
        .blob_store(Arc::new(blobs.clone()))
        .build();
    Setup {
        history,
        blobs,
        model,
        service,
    }
}

/// The source of the image part of `parts`.
fn image_source(parts: &[Part]) -> &Binary {
    parts
        .iter()
        .find_map(|part| match part {
            Part::Image { source, .. } => Some(source),
            _ => None,
        })
        .expect("an image part")
}

fn inline_bytes(source: &Binary) -> &Bytes {
    source.bytes().expect("bytes held inline")
}

#[tokio::test]
async fn a_large_attachment_is_stored_as_a_blob_ref_and_the_blob_holds_its_bytes() {
    let Setup {
        history,
        blobs,
        model,
        service,
    } = setup();
    let image = png(200_000, 1);
    let reply = service
        .send(
            SendRequest::new(alice(), "What is in this picture?")
                .with_attachment(Part::image(ImageFormat::Png, image.clone())),
        )
        .await
        .expect("send");

    let key = attachment_key(reply.chat_id, reply.message_uid, 0);
    let expected = Binary::Blob(BlobRef {
        key: key.clone(),
        size: 200_000,
        sha256: sha256_hex(&image),
    });
    assert_eq!(image_source(&reply.question.parts), &expected);
    let stored = history
        .get_message(&alice(), reply.message_uid)
        .await
        .expect("the stored question");
    assert_eq!(
        image_source(&stored.parts),
        &expected,
        "the history keeps a reference, not the bytes"
    );
    assert_eq!(blobs.keys(), [key.as_str()]);
    assert_eq!(blobs.get(&key).await.expect("the blob"), image);

    // The model was sent the bytes themselves.
    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    let question = requests[0].messages.last().expect("the question");
    assert_eq!(inline_bytes(image_source(&question.parts)), &image);
}

#[tokio::test]
async fn the_next_turn_sends_the_stored_image_bytes_to_the_model() {
    let Setup { model, service, .. } = setup();
    let image = png(200_000, 2);
    let first = service
        .send(
            SendRequest::new(alice(), "Describe it")
                .with_attachment(Part::image(ImageFormat::Png, image.clone())),
        )
        .await
        .expect("first send");
    service
        .send(SendRequest::new(alice(), "And the colours?").in_chat(first.chat_id))
        .await
        .expect("second send");

    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    let second = &requests[1];
    assert_eq!(second.messages.len(), 3, "question, answer, new question");
    assert_eq!(
        inline_bytes(image_source(&second.messages[0].parts)),
        &image,
        "the first turn's image, read back from the blob store"
    );
    assert!(second.messages[2].parts.is_empty(), "a text-only turn");
}

#[tokio::test]
async fn a_tampered_blob_fails_the_send_with_a_store_error_and_calls_no_model() {
    let Setup {
        history,
        blobs,
        model,
        service,
    } = setup();
    let image = png(200_000, 3);
    let first = service
        .send(
            SendRequest::new(alice(), "Keep this")
                .with_attachment(Part::image(ImageFormat::Png, image.clone())),
        )
        .await
        .expect("first send");
    let key = attachment_key(first.chat_id, first.message_uid, 0);
    // Same size, different bytes.
    blobs
        .put(&key, png(200_000, 4))
        .await
        .expect("overwrite the blob");

    let error = service
        .send(SendRequest::new(alice(), "Still there?").in_chat(first.chat_id))
        .await
        .expect_err("the blob no longer holds what was stored");
    assert!(
        matches!(
            error,
            ChatError::Store(StoreError::Backend {
                backend: "memory",
                ..
            })
        ),
        "{error:?}"
    );
    assert_eq!(
        model.requests().len(),
        1,
        "no model call for the second send"
    );
    let messages = history
        .list_messages(&alice(), first.chat_id, ListOptions::first(10))
        .await
        .expect("list")
        .items;
    assert_eq!(messages.len(), 2, "nothing stored for the failed send");

    // A missing blob fails the same way, as NotFound.
    blobs.delete_prefix(&key).await.expect("delete the blob");
    let error = service
        .send(SendRequest::new(alice(), "And now?").in_chat(first.chat_id))
        .await
        .expect_err("the blob is gone");
    assert!(
        matches!(
            error,
            ChatError::Store(StoreError::NotFound {
                resource: Resource::Attachment
            })
        ),
        "{error:?}"
    );
    assert_eq!(model.requests().len(), 1);
}

#[tokio::test]
async fn delete_message_removes_its_blobs_and_leaves_the_others() {
    let Setup { blobs, service, .. } = setup();
    let first = service
        .send(
            SendRequest::new(alice(), "one")
                .with_attachment(Part::image(ImageFormat::Png, png(100_000, 5))),
        )
        .await
        .expect("first send");
    let second = service
        .send(
            SendRequest::new(alice(), "two")
                .in_chat(first.chat_id)
                .with_attachment(Part::image(ImageFormat::Png, png(100_000, 6))),
        )
        .await
        .expect("second send");
    assert_eq!(blobs.len(), 2);

    service
        .delete_message(&alice(), first.message_uid)
        .await
        .expect("delete the first question");
    assert_eq!(
        blobs.keys(),
        [attachment_key(first.chat_id, second.message_uid, 0)]
    );
}

#[tokio::test]
async fn delete_conversation_removes_its_blobs_and_leaves_other_conversations() {
    let Setup { blobs, service, .. } = setup();
    let mut chats = Vec::new();
    for seed in [7, 8] {
        let reply = service
            .send(
                SendRequest::new(alice(), "a picture")
                    .with_attachment(Part::image(ImageFormat::Png, png(100_000, seed))),
            )
            .await
            .expect("send");
        chats.push(reply);
    }
    service
        .send(
            SendRequest::new(alice(), "another")
                .in_chat(chats[0].chat_id)
                .with_attachment(Part::image(ImageFormat::Png, png(100_000, 9))),
        )
        .await
        .expect("send");
    assert_eq!(blobs.len(), 3);

    service
        .delete_conversation(&alice(), chats[0].chat_id)
        .await
        .expect("delete");
    assert_eq!(
        blobs.keys(),
        [attachment_key(chats[1].chat_id, chats[1].message_uid, 0)]
    );
}

#[tokio::test]
async fn message_part_returns_the_bytes_of_a_blob_and_the_text_as_it_is() {
    let Setup { service, .. } = setup();
    let image = png(200_000, 10);
    let reply = service
        .send(
            SendRequest::new(alice(), "Look")
                .with_attachment(Part::image(ImageFormat::Png, image.clone())),
        )
        .await
        .expect("send");

    let part = service
        .message_part(&alice(), reply.message_uid, 0)
        .await
        .expect("the image");
    assert_eq!(part, Part::image(ImageFormat::Png, image));
    let text = service
        .message_part(&alice(), reply.message_uid, 1)
        .await
        .expect("the text");
    assert_eq!(text, Part::text("Look"));
    let missing = service.message_part(&alice(), reply.message_uid, 2).await;
    assert!(
        matches!(
            missing,
            Err(StoreError::NotFound {
                resource: Resource::Attachment
            })
        ),
        "{missing:?}"
    );
    let bob = UserId::new("bob").expect("a valid user id");
    assert!(
        matches!(
            service.message_part(&bob, reply.message_uid, 0).await,
            Err(StoreError::NotFound { .. })
        ),
        "another user's attachment is not found"
    );
}

#[tokio::test]
async fn a_small_attachment_stays_inline_and_writes_no_blob() {
    let Setup {
        history,
        blobs,
        service,
        ..
    } = setup();
    let image = png(1_000, 11);
    let reply = service
        .send(
            SendRequest::new(alice(), "A small one")
                .with_attachment(Part::image(ImageFormat::Png, image.clone())),
        )
        .await
        .expect("send");
    let stored = history
        .get_message(&alice(), reply.message_uid)
        .await
        .expect("the stored question");
    assert_eq!(inline_bytes(image_source(&stored.parts)), &image);
    assert!(blobs.is_empty());
    let part = service
        .message_part(&alice(), reply.message_uid, 0)
        .await
        .expect("the image");
    assert_eq!(part, Part::image(ImageFormat::Png, image));
}

#[tokio::test]
async fn without_a_blob_store_a_large_attachment_stays_inline() {
    let history = InMemoryHistoryStore::new();
    let service = ChatService::builder(
        Arc::new(RecordingModel::default()),
        Arc::new(history.clone()),
    )
    .build();
    let image = png(200_000, 12);
    let reply = service
        .send(
            SendRequest::new(alice(), "No blob store")
                .with_attachment(Part::image(ImageFormat::Png, image.clone())),
        )
        .await
        .expect("send");
    let stored = history
        .get_message(&alice(), reply.message_uid)
        .await
        .expect("the stored question");
    assert_eq!(inline_bytes(image_source(&stored.parts)), &image);
}

/// SQLite history and filesystem blobs, as a single-machine host runs them: the file is
/// written under the root, read back for the next turn and for a download, and deleted
/// with the conversation (directories too).
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_history_with_filesystem_blobs_end_to_end() {
    use bedrock_chat_store::{FilesystemBlobStore, SqliteHistoryStore};

    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("blob-service")
        .join(MessageId::new().to_string());
    std::fs::create_dir_all(&dir).expect("the test directory");
    let history = SqliteHistoryStore::open(&format!(
        "sqlite://{}?mode=rwc",
        dir.join("chats.db").display()
    ))
    .await
    .expect("open sqlite");
    let root = dir.join("blobs");
    let blobs = FilesystemBlobStore::open(&root)
        .await
        .expect("open the blob root");
    let model = RecordingModel::default();
    let service = ChatService::builder(Arc::new(model.clone()), Arc::new(history.clone()))
        .blob_store(Arc::new(blobs))
        .build();

    let image = png(300_000, 13);
    let first = service
        .send(
            SendRequest::new(alice(), "Keep this on disk")
                .with_attachment(Part::image(ImageFormat::Png, image.clone())),
        )
        .await
        .expect("first send");
    let key = attachment_key(first.chat_id, first.message_uid, 0);
    assert_eq!(
        std::fs::read(root.join(&key)).expect("the blob's file"),
        image.as_ref()
    );
    let stored = history
        .get_message(&alice(), first.message_uid)
        .await
        .expect("the stored question");
    assert!(matches!(image_source(&stored.parts), Binary::Blob(blob) if blob.key == key));

    service
        .send(SendRequest::new(alice(), "What was it?").in_chat(first.chat_id))
        .await
        .expect("second send");
    let requests = model.requests();
    assert_eq!(
        inline_bytes(image_source(&requests[1].messages[0].parts)),
        &image
    );
    assert_eq!(
        service
            .message_part(&alice(), first.message_uid, 0)
            .await
            .expect("download"),
        Part::image(ImageFormat::Png, image)
    );

    service
        .delete_conversation(&alice(), first.chat_id)
        .await
        .expect("delete");
    assert!(
        !root.join("attachments").exists(),
        "files and directories gone"
    );
    assert!(root.is_dir(), "the root stays");
    std::fs::remove_dir_all(&dir).expect("clean up");
}
