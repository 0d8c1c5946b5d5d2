//! The history store conformance suite on [`RedisHistoryStore`], with and without expiry,
//! and what only Redis has: expiry on every key, and a server that goes away and comes
//! back.
#![cfg(feature = "redis")]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bedrock_chat_core::conformance::store::{StoreCapabilities, StoreUnderTest};
use bedrock_chat_core::conformance::{random_user, service_url, unique_prefix};
use bedrock_chat_core::{AppendRequest, HistoryStore, NewConversation, NewMessage, StoreError};
use bedrock_chat_store::{RedisConfig, RedisHistoryStore};

fn url() -> String {
    service_url("BEDROCK_CHAT_TEST_REDIS_URL")
}

/// Redis strings are binary-safe: NUL round-trips.
const CAPABILITIES: StoreCapabilities = StoreCapabilities { nul_in_text: true };

async fn redis() -> StoreUnderTest {
    let config = RedisConfig::new(url()).with_prefix(unique_prefix());
    let store = RedisHistoryStore::connect(config)
        .await
        .expect("connect to Redis");
    StoreUnderTest::new(store, CAPABILITIES)
}

async fn redis_with_ttl() -> StoreUnderTest {
    let config = RedisConfig::new(url())
        .with_prefix(unique_prefix())
        .with_ttl(Duration::from_secs(600));
    let store = RedisHistoryStore::connect(config)
        .await
        .expect("connect to Redis");
    StoreUnderTest::new(store, CAPABILITIES)
}

mod persistent {
    bedrock_chat_core::history_store_conformance!(super::redis);
}

mod expiring {
    bedrock_chat_core::history_store_conformance!(super::redis_with_ttl);
}

/// Every key under `prefix`, with its remaining time to live in milliseconds.
async fn keys_and_ttls(prefix: &str) -> Vec<(String, i64)> {
    let client = redis::Client::open(url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect directly");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let mut out = Vec::new();
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        out.push((key, ttl));
    }
    out
}

async fn write_a_little(store: &RedisHistoryStore) {
    let user = random_user();
    let chat = store
        .create_conversation(&user, NewConversation::new("memory"))
        .await
        .expect("create");
    store
        .append(
            &user,
            AppendRequest::existing(
                chat.id,
                vec![NewMessage::user("q"), NewMessage::assistant("a")],
            ),
        )
        .await
        .expect("append");
}

#[tokio::test]
async fn with_a_ttl_every_key_expires() {
    let prefix = unique_prefix();
    let config = RedisConfig::new(url())
        .with_prefix(prefix.clone())
        .with_ttl(Duration::from_secs(60));
    let store = RedisHistoryStore::connect(config).await.expect("connect");
    write_a_little(&store).await;
    let keys = keys_and_ttls(&prefix).await;
    // The conversation hash, its seq and message keys, the user's list, two index keys.
    assert_eq!(keys.len(), 6, "{keys:?}");
    for (key, ttl) in keys {
        assert!(ttl > 0 && ttl <= 60_000, "{key} has ttl {ttl}");
    }
}

#[tokio::test]
async fn without_a_ttl_nothing_expires() {
    let prefix = unique_prefix();
    let store = RedisHistoryStore::connect(RedisConfig::new(url()).with_prefix(prefix.clone()))
        .await
        .expect("connect");
    write_a_little(&store).await;
    let keys = keys_and_ttls(&prefix).await;
    assert_eq!(keys.len(), 6, "{keys:?}");
    for (key, ttl) in keys {
        assert_eq!(ttl, -1, "{key} expires");
    }
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let empty_prefix = RedisHistoryStore::connect(RedisConfig::new(url()).with_prefix("")).await;
    assert!(matches!(empty_prefix, Err(StoreError::InvalidInput(_))));
    let tiny_ttl =
        RedisHistoryStore::connect(RedisConfig::new(url()).with_ttl(Duration::from_micros(10)))
            .await;
    assert!(matches!(tiny_ttl, Err(StoreError::InvalidInput(_))));
    let bad_url = RedisHistoryStore::connect(RedisConfig::new("http://nowhere")).await;
    assert!(matches!(bad_url, Err(StoreError::InvalidInput(_))));
}

/// A private `redis-server` on a loopback port, killed when dropped.
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_goes_away_is_unavailable_and_the_store_recovers() {
    let mut server = PrivateRedis::start(free_port());
    let config = RedisConfig::new(format!("redis://127.0.0.1:{}/", server.port))
        .with_prefix(unique_prefix())
        .with_connection_timeout(Duration::from_secs(1))
        .with_reconnect_retries(2);
    let store = RedisHistoryStore::connect(config).await.expect("connect");
    let user = random_user();
    store
        .create_conversation(&user, NewConversation::new("before"))
        .await
        .expect("create");

    server.stop();
    match store
        .create_conversation(&user, NewConversation::new("during"))
        .await
    {
        Err(
            e @ StoreError::Unavailable {
                backend: "redis", ..
            },
        ) => assert!(e.is_retryable()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    match store.ping().await {
        Err(StoreError::Unavailable { .. }) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }

    // Same port: the store reconnects by itself. The new server is empty (no persistence).
    let port = server.port;
    let _server = PrivateRedis::start(port);
    let chat = store
        .create_conversation(&user, NewConversation::new("after"))
        .await
        .expect("works again");
    assert_eq!(
        store
            .get_conversation(&user, chat.id)
            .await
            .expect("get")
            .title,
        "after"
    );
}

#[tokio::test]
async fn from_url_connects_with_the_prefix_the_url_gives() {
    let prefix = unique_prefix();
    let store = bedrock_chat_store::from_url(&format!("{}?prefix={prefix}", url()))
        .await
        .expect("connect by URL");
    assert_eq!(store.backend(), "redis");
    store.ping().await.expect("ping");
    let user = random_user();
    let chat = store
        .create_conversation(&user, NewConversation::new("by url"))
        .await
        .expect("create");
    assert!(
        !keys_and_ttls(&prefix).await.is_empty(),
        "the keys start with the URL's prefix"
    );
    let direct = RedisHistoryStore::connect(RedisConfig::new(url()).with_prefix(prefix))
        .await
        .expect("connect");
    let got = direct
        .get_conversation(&user, chat.id)
        .await
        .expect("read it back under the same prefix");
    assert_eq!(got.title, "by url");
}

#[tokio::test]
async fn from_url_to_a_closed_port_is_a_retryable_connect_error() {
    let err = bedrock_chat_store::from_url(&format!("redis://127.0.0.1:{}/", free_port()))
        .await
        .err()
        .expect("nothing listens there");
    assert!(
        matches!(
            err,
            bedrock_chat_store::StoreUrlError::Connect {
                backend: "redis",
                error: StoreError::Unavailable { .. }
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}
