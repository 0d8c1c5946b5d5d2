//! Every store and limiter URL form the server accepts, connected to the real services
//! `scripts/test` provides (PostgreSQL, Redis, a moto DynamoDB server), and a send
//! through each. Compiled only with the `service-tests` feature (on in `scripts/test`'s
//! `--all-features` run), so plain `cargo test` needs no service; there, a missing
//! service fails loudly.
#![cfg(feature = "service-tests")]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use bedrock_chat_core::conformance::service_url;
use bedrock_chat_core::{Binary, ImageFormat, Part, SendRequest, UserId};
use bedrock_chat_examples::backends;
use bedrock_chat_examples::config::ServerConfig;
use clap::Parser;

fn dynamodb_url(table: &str) -> String {
    let endpoint = service_url("BEDROCK_CHAT_TEST_DYNAMODB_ENDPOINT");
    format!("dynamodb://{table}?endpoint={endpoint}&region=us-east-1")
}

/// A name unique to this run, for tables.
fn unique(kind: &str) -> String {
    format!("bc-{kind}-{}", uuid::Uuid::new_v4().simple())
}

async fn a_send_works_on(store: &str, limiter: &str) {
    let config = ServerConfig::try_parse_from([
        "server",
        "--store",
        store,
        "--limiter",
        limiter,
        "--rate-limit",
        "2/min",
        "--token-budget",
        "1000000/day",
        "--global-rate-limit",
        "1000/min",
    ])
    .unwrap();
    let service = backends::service(&config.backends)
        .await
        .unwrap_or_else(|e| panic!("{store} / {limiter}: {e}"));
    let user = UserId::new(format!("u{}", uuid::Uuid::new_v4().simple())).unwrap();
    let reply = service
        .send(SendRequest::new(user.clone(), "hello"))
        .await
        .unwrap();
    assert_eq!(reply.rate_limit.unwrap().remaining, 1, "{limiter}");
    let stored = service
        .store()
        .get_conversation(&user, reply.chat_id)
        .await
        .unwrap();
    assert_eq!(stored.message_count, 2, "{store}");
    service
        .send(SendRequest::new(user.clone(), "again"))
        .await
        .unwrap();
    let refused = service
        .send(SendRequest::new(user, "third"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, bedrock_chat_core::ChatError::RateLimited(_)),
        "{limiter}: {refused:?}"
    );
}

#[tokio::test]
async fn postgres_store_and_redis_limiter_urls_start_the_service() {
    a_send_works_on(
        &service_url("BEDROCK_CHAT_TEST_POSTGRES_URL"),
        &service_url("BEDROCK_CHAT_TEST_REDIS_URL"),
    )
    .await;
}

#[tokio::test]
async fn redis_store_url_starts_the_service() {
    a_send_works_on(&service_url("BEDROCK_CHAT_TEST_REDIS_URL"), "memory").await;
}

#[tokio::test]
async fn dynamodb_store_and_limiter_urls_create_their_tables() {
    a_send_works_on(&dynamodb_url(&unique("h")), &dynamodb_url(&unique("l"))).await;
}

#[tokio::test]
async fn sqlite_and_memory_urls_start_the_service() {
    let dir = std::env::temp_dir().join(unique("sqlite"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}", dir.join("chat.db").display());
    a_send_works_on(&url, "memory").await;
    a_send_works_on("memory", "memory").await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn unreachable_services_are_a_clear_startup_error() {
    // `unavailable`: the URL is well formed but nothing answers (the CLI exits 5 for it,
    // 2 for a wrong setting).
    for (store, limiter, says, unavailable) in [
        (
            "postgres://postgres@127.0.0.1:1/none",
            "memory",
            "--store postgres://",
            true,
        ),
        ("memory", "redis://127.0.0.1:1/", "--limiter redis://", true),
        ("memory", "sqlite:x.db", "--limiter sqlite:x.db", false),
        ("nosuch://x", "memory", "--store nosuch://x", false),
    ] {
        let config =
            ServerConfig::try_parse_from(["server", "--store", store, "--limiter", limiter])
                .unwrap();
        let error = backends::service(&config.backends).await.unwrap_err();
        assert!(error.to_string().starts_with(says), "{error}");
        assert_eq!(error.is_unavailable(), unavailable, "{error}");
    }
}

/// A PNG of `size` bytes: a real 1x1 header, then padding (the header is what the checks
/// read).
fn png_of(size: usize) -> Vec<u8> {
    let mut bytes = vec![
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
        0x15, 0xC4, 0x89,
    ];
    bytes.resize(size, 0);
    bytes
}

#[tokio::test]
async fn a_blob_store_url_keeps_large_attachments_out_of_a_dynamodb_item() {
    // 600 KB is more than a DynamoDB item holds (400 KB): with --blob-store the item keeps
    // a reference and the bytes live in the blob store.
    let dir = std::env::temp_dir().join(unique("blobs"));
    let table = unique("blob-history");
    let store = dynamodb_url(&table);
    let blobs = format!("file:{}", dir.display());
    let config =
        ServerConfig::try_parse_from(["server", "--store", &store, "--blob-store", &blobs])
            .unwrap();
    let service = backends::service(&config.backends).await.unwrap();
    let user = UserId::new(format!("u{}", uuid::Uuid::new_v4().simple())).unwrap();
    let png = png_of(600 * 1024);
    let reply = service
        .send(
            SendRequest::new(user.clone(), "what is this?")
                .with_attachment(Part::image(ImageFormat::Png, png.clone())),
        )
        .await
        .unwrap();
    let question = service
        .store()
        .get_message(&user, reply.message_uid)
        .await
        .unwrap();
    let Some(Binary::Blob(blob)) = question.parts[0].binary() else {
        panic!("the image went to the blob store: {:?}", question.parts);
    };
    assert_eq!(blob.size, png.len() as u64);
    assert_eq!(std::fs::read(dir.join(&blob.key)).unwrap(), png);
    let part = service
        .message_part(&user, reply.message_uid, 0)
        .await
        .unwrap();
    assert_eq!(part, Part::image(ImageFormat::Png, png));
    service
        .delete_conversation(&user, reply.chat_id)
        .await
        .unwrap();
    assert!(
        !dir.join(&blob.key).exists(),
        "deleting the conversation deletes its blobs"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_bad_blob_store_url_is_a_clear_startup_error() {
    let config =
        ServerConfig::try_parse_from(["server", "--store", "memory", "--blob-store", "ftp://x"])
            .unwrap();
    let error = backends::service(&config.backends).await.unwrap_err();
    assert!(error.to_string().contains("--blob-store"), "{error}");
    assert!(!error.is_unavailable(), "{error}");
}
