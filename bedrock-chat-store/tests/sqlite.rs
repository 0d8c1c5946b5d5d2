//! The history store conformance suite on [`SqliteHistoryStore`], in memory and in a file,
//! and what only SQLite has: reopening a file, migrations, several stores on one file.
#![cfg(feature = "sqlite")]

use std::path::PathBuf;
use std::sync::Arc;

use bedrock_chat_core::conformance::random_user;
use bedrock_chat_core::conformance::store::{StoreCapabilities, StoreUnderTest};
use bedrock_chat_core::{
    AppendRequest, HistoryStore, ListOptions, NewConversation, NewMessage, StoreError,
};
use bedrock_chat_store::{SqliteConfig, SqliteHistoryStore};

/// SQLite keeps text byte for byte, NUL included.
const CAPABILITIES: StoreCapabilities = StoreCapabilities { nul_in_text: true };

/// A fresh database file under Cargo's per-target scratch directory.
fn fresh_file() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sqlite-history-store");
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()))
}

fn url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

async fn in_memory() -> StoreUnderTest {
    let store = SqliteHistoryStore::connect(SqliteConfig::in_memory())
        .await
        .expect("open an in-memory database");
    StoreUnderTest::new(store, CAPABILITIES)
}

async fn in_a_file() -> StoreUnderTest {
    let store = SqliteHistoryStore::open(&url(&fresh_file()))
        .await
        .expect("open a database file");
    StoreUnderTest::new(store, CAPABILITIES)
}

mod memory {
    bedrock_chat_core::history_store_conformance!(super::in_memory);
}

mod file {
    bedrock_chat_core::history_store_conformance!(super::in_a_file);
}

#[tokio::test]
async fn a_file_store_keeps_its_data_when_reopened() {
    let path = fresh_file();
    let user = random_user();
    let store = SqliteHistoryStore::open(&url(&path)).await.expect("open");
    let chat = store
        .create_conversation(&user, NewConversation::new("kept"))
        .await
        .expect("create");
    let stored = store
        .append(
            &user,
            AppendRequest::existing(chat.id, vec![NewMessage::user("still here")]),
        )
        .await
        .expect("append")
        .messages;
    store.close().await;
    drop(store);

    let reopened = SqliteHistoryStore::open(&url(&path)).await.expect("reopen");
    let read = reopened
        .get_conversation(&user, chat.id)
        .await
        .expect("the conversation survives");
    assert_eq!(read.title, "kept");
    assert_eq!(read.message_count, 1);
    let messages = reopened
        .list_messages(&user, chat.id, ListOptions::first(10))
        .await
        .expect("list");
    assert_eq!(messages.items, stored);
}

#[tokio::test]
async fn migrations_are_applied_on_connect_and_only_once() {
    let path = fresh_file();
    let store = SqliteHistoryStore::open(&url(&path)).await.expect("open");
    store.close().await;
    // A second connect finds the migrations applied and changes nothing.
    let again = SqliteHistoryStore::open(&url(&path)).await.expect("reopen");
    again.ping().await.expect("ping");
    again.close().await;

    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&url(&path))
        .await
        .expect("connect directly");
    let (applied,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .expect("read the migration table");
    let expected = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .expect("list migrations")
        .count();
    assert_eq!(applied, expected as i64);
    let (tables,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
         AND name IN ('conversations', 'messages')",
    )
    .fetch_one(&mut conn)
    .await
    .expect("read the schema");
    assert_eq!(tables, 2);
}

#[tokio::test]
async fn without_migrations_a_fresh_file_has_no_schema() {
    let path = fresh_file();
    let store = SqliteHistoryStore::connect(SqliteConfig::new(url(&path)).run_migrations(false))
        .await
        .expect("open");
    let result = store
        .create_conversation(&random_user(), NewConversation::new("nowhere"))
        .await;
    assert!(
        matches!(
            result,
            Err(StoreError::Backend {
                backend: "sqlite",
                ..
            })
        ),
        "expected a Backend error, got {result:?}"
    );
}

#[tokio::test]
async fn the_file_is_in_wal_mode() {
    let path = fresh_file();
    let store = SqliteHistoryStore::open(&url(&path)).await.expect("open");
    store.close().await;
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&url(&path))
        .await
        .expect("connect directly");
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .expect("read the journal mode");
    assert_eq!(mode, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_append_without_losing_or_repeating_anything() {
    // Two stores stand for two processes: each has its own writer connection, so their
    // writes meet at SQLite's file lock (BEGIN IMMEDIATE and the busy timeout).
    let path = fresh_file();
    let first: Arc<dyn HistoryStore> =
        Arc::new(SqliteHistoryStore::open(&url(&path)).await.expect("open"));
    let second: Arc<dyn HistoryStore> =
        Arc::new(SqliteHistoryStore::open(&url(&path)).await.expect("open"));
    let user = random_user();
    let chat = first
        .create_conversation(&user, NewConversation::new("shared"))
        .await
        .expect("create");
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { &first } else { &second });
            let user = user.clone();
            tokio::spawn(async move {
                let request = AppendRequest::existing(
                    chat.id,
                    vec![
                        NewMessage::user(format!("q{i}")),
                        NewMessage::assistant("a"),
                    ],
                );
                store.append(&user, request).await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("append");
    }
    let all = second
        .list_messages(&user, chat.id, ListOptions::first(1000))
        .await
        .expect("list");
    let seqs: Vec<u64> = all.items.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=80).collect::<Vec<u64>>());
}

#[tokio::test]
async fn an_in_memory_store_is_shared_by_its_clones() {
    let store = SqliteHistoryStore::connect(SqliteConfig::in_memory())
        .await
        .expect("open");
    let clone = store.clone();
    let user = random_user();
    let chat = store
        .create_conversation(&user, NewConversation::new("one database"))
        .await
        .expect("create");
    assert_eq!(
        clone
            .get_conversation(&user, chat.id)
            .await
            .expect("get")
            .title,
        "one database"
    );
}

#[tokio::test]
async fn a_closed_store_is_unavailable() {
    let store = SqliteHistoryStore::open(&url(&fresh_file()))
        .await
        .expect("open");
    store.close().await;
    let result = store
        .get_conversation(&random_user(), bedrock_chat_core::ChatId::new())
        .await;
    match result {
        Err(e @ StoreError::Unavailable { .. }) => assert!(e.is_retryable()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable {
            backend: "sqlite",
            ..
        })
    ));
}
