//! The blob store conformance suite on [`S3BlobStore`] against the moto server that
//! `scripts/test` starts (moto serves S3 at the same endpoint as DynamoDB), plus a key
//! prefix, paging past 1,000 objects, a missing bucket, an unreachable endpoint and
//! [`blob_from_url`].
//!
//! Each case makes its own bucket, named from `BEDROCK_CHAT_TEST_PREFIX` (this run) and a
//! random part, and deletes it when it passes.
#![cfg(feature = "s3")]

use std::net::TcpListener;
use std::sync::Arc;

use aws_sdk_s3::Client;
use bedrock_chat_core::conformance::blob::BlobUnderTest;
use bedrock_chat_core::conformance::service_url;
use bedrock_chat_core::{BlobStore, StoreError};
use bedrock_chat_store::blob::s3::client;
use bedrock_chat_store::{blob_from_url, S3BlobStore, S3Config};
use bytes::Bytes;

fn endpoint() -> String {
    service_url("BEDROCK_CHAT_TEST_DYNAMODB_ENDPOINT")
}

async fn moto_client() -> Client {
    client(Some(&endpoint()), Some("us-east-1")).await
}

/// A fresh bucket for this run and case: S3 names are 3-63 of `a-z 0-9 . -`.
async fn bucket(client: &Client) -> String {
    let run = std::env::var("BEDROCK_CHAT_TEST_PREFIX").unwrap_or_else(|_| "bctest".into());
    let run: String = run
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(30)
        .collect();
    let name = format!("{run}-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    client
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {name}: {e:?}"));
    name
}

/// Empties and deletes `bucket`.
async fn delete_bucket(client: &Client, bucket: &str) {
    let everything = S3BlobStore::new(client.clone(), S3Config::new(bucket));
    everything
        .delete_prefix("")
        .await
        .expect("empty the bucket");
    client
        .delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("delete bucket {bucket}: {e:?}"));
}

/// A store over a fresh bucket, with a key prefix so that the prefix is exercised by
/// every case.
async fn s3() -> BlobUnderTest {
    let client = moto_client().await;
    let name = bucket(&client).await;
    let store = S3BlobStore::new(
        client.clone(),
        S3Config::new(&name).with_prefix("chat/blobs"),
    );
    BlobUnderTest::new(store).with_teardown(move || async move {
        delete_bucket(&client, &name).await;
    })
}

bedrock_chat_core::blob_store_conformance!(s3);

async fn object_keys(client: &Client, bucket: &str) -> Vec<String> {
    let listed = client
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list");
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn blobs_are_objects_under_the_key_prefix_and_other_objects_are_left_alone() {
    let client = moto_client().await;
    let name = bucket(&client).await;
    let store = S3BlobStore::new(
        client.clone(),
        S3Config::new(&name).with_prefix("chat/blobs"),
    );
    store
        .put("attachments/c/m/0", Bytes::from_static(b"png"))
        .await
        .expect("put");
    let outside = S3BlobStore::new(client.clone(), S3Config::new(&name));
    outside
        .put("attachments/c/m/1", Bytes::from_static(b"not ours"))
        .await
        .expect("put outside the prefix");
    let mut keys = object_keys(&client, &name).await;
    keys.sort();
    assert_eq!(keys, ["attachments/c/m/1", "chat/blobs/attachments/c/m/0"]);
    assert_eq!(store.delete_prefix("").await.expect("delete all"), 1);
    assert_eq!(object_keys(&client, &name).await, ["attachments/c/m/1"]);
    assert!(matches!(
        store.get("attachments/c/m/1").await,
        Err(StoreError::NotFound { .. })
    ));
    delete_bucket(&client, &name).await;
}

#[tokio::test]
async fn delete_prefix_pages_through_more_than_a_thousand_objects() {
    let client = moto_client().await;
    let name = bucket(&client).await;
    let store = Arc::new(S3BlobStore::new(client.clone(), S3Config::new(&name)));
    let keys: Vec<String> = (0..2_100).map(|i| format!("many/{i:05}")).collect();
    // A few at a time: moto answers one request at a time anyway.
    for chunk in keys.chunks(50) {
        let puts: Vec<_> = chunk
            .iter()
            .map(|key| {
                let store = Arc::clone(&store);
                let key = key.clone();
                tokio::spawn(async move { store.put(&key, Bytes::from_static(b"1")).await })
            })
            .collect();
        for put in puts {
            put.await.expect("task").expect("put");
        }
    }
    store
        .put("manx", Bytes::from_static(b"stays"))
        .await
        .expect("put");
    assert_eq!(store.delete_prefix("many/").await.expect("delete"), 2_100);
    assert_eq!(object_keys(&client, &name).await, ["manx"]);
    assert_eq!(store.delete_prefix("many/").await.expect("again"), 0);
    delete_bucket(&client, &name).await;
}

#[tokio::test]
async fn a_missing_bucket_is_a_backend_error_not_a_missing_blob() {
    let client = moto_client().await;
    let store = S3BlobStore::new(
        client,
        S3Config::new(format!("missing-{}", uuid::Uuid::new_v4().simple())),
    );
    for result in [
        store.get("k").await.map(drop),
        store.put("k", Bytes::from_static(b"x")).await,
        store.delete_prefix("k").await.map(drop),
    ] {
        assert!(
            matches!(result, Err(StoreError::Backend { backend: "s3", .. })),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable() {
    // A port that was free a moment ago: nothing answers there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let client = client(Some(&format!("http://127.0.0.1:{port}")), Some("us-east-1")).await;
    let store = S3BlobStore::new(client, S3Config::new("nowhere"));
    let error = store.get("k").await.expect_err("nothing answers");
    assert!(
        matches!(error, StoreError::Unavailable { backend: "s3", .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn blob_from_url_opens_a_bucket_with_a_prefix() {
    let client = moto_client().await;
    let name = bucket(&client).await;
    let url = format!(
        "s3://{name}/from-url/?endpoint={}&region=us-east-1",
        endpoint()
    );
    let blobs = blob_from_url(&url).await.expect("open");
    assert_eq!(blobs.backend(), "s3");
    blobs
        .put("a/b", Bytes::from_static(b"via url"))
        .await
        .expect("put");
    assert_eq!(object_keys(&client, &name).await, ["from-url/a/b"]);
    assert_eq!(blobs.get("a/b").await.expect("get").as_ref(), b"via url");
    delete_bucket(&client, &name).await;
}
