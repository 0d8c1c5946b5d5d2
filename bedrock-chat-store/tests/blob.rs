//! The blob store conformance suite on [`InMemoryBlobStore`] and [`FilesystemBlobStore`]
//! (S3 is in `tests/blob_s3.rs`, against moto).

mod memory {
    use bedrock_chat_core::conformance::blob::BlobUnderTest;
    use bedrock_chat_store::InMemoryBlobStore;

    async fn memory() -> BlobUnderTest {
        BlobUnderTest::new(InMemoryBlobStore::new())
    }

    bedrock_chat_core::blob_store_conformance!(memory);
}

mod filesystem {
    use std::path::PathBuf;

    use bedrock_chat_core::conformance::blob::BlobUnderTest;
    use bedrock_chat_store::FilesystemBlobStore;

    /// A fresh root per case under the target directory, removed when the case passes.
    async fn filesystem() -> BlobUnderTest {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("filesystem-blob-store")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let store = FilesystemBlobStore::open(&root)
            .await
            .expect("create the root");
        BlobUnderTest::new(store).with_teardown(move || async move {
            // Every case deletes what it wrote, so only empty directories may be left.
            tokio::fs::remove_dir_all(&root)
                .await
                .expect("remove the root");
        })
    }

    bedrock_chat_core::blob_store_conformance!(filesystem);
}
