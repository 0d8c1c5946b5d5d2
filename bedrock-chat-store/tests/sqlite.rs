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
    let store =
        SqliteHistoryStore::connect(SqliteConfig::new(url(&path)).with_run_migrations(false))
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

#[tokio::test]
async fn a_database_from_before_the_usage_ledger_stays_readable_after_migrating() {
    use sqlx::Connection;
    // A file at the first schema, with a conversation and an exchange as the first
    // release wrote them (message ids unique across users, usage only on replies).
    let path = fresh_file();
    let user = random_user();
    let (chat, question, answer) = (
        bedrock_chat_core::ChatId::new(),
        bedrock_chat_core::MessageId::new(),
        bedrock_chat_core::MessageId::new(),
    );
    {
        let mut conn = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", url(&path)))
            .await
            .expect("create the file");
        let first = include_str!("../migrations/sqlite/20250101000000_history.sql");
        sqlx::raw_sql(first)
            .execute(&mut conn)
            .await
            .expect("the first schema");
        sqlx::query(
            "INSERT INTO conversations (id, user_id, title, system_prompt, metadata, \
             message_count, last_seq, created_at, updated_at) \
             VALUES (?, ?, 'old', NULL, '{}', 2, 2, 1000, 2000)",
        )
        .bind(chat.to_string())
        .bind(user.as_str())
        .execute(&mut conn)
        .await
        .expect("an old conversation");
        for (seq, id, role, tokens) in [
            (1, question, "user", None),
            (2, answer, "assistant", Some(7)),
        ] {
            sqlx::query(
                "INSERT INTO messages (id, chat_id, seq, role, content, input_tokens, \
                 output_tokens, total_tokens, metadata, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, 'text', ?, ?, ?, '{}', 2000, 2000)",
            )
            .bind(id.to_string())
            .bind(chat.to_string())
            .bind(seq)
            .bind(role)
            .bind(tokens)
            .bind(tokens)
            .bind(tokens.map(|t| 2 * t))
            .execute(&mut conn)
            .await
            .expect("an old message");
        }
        // Record the first migration as applied, as sqlx would have.
        let migrator = sqlx::migrate!("./migrations/sqlite");
        let applied = migrator.iter().next().expect("the first migration");
        sqlx::query(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
        )
        .execute(&mut conn)
        .await
        .expect("the migration table");
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (?, ?, TRUE, ?, 0)",
        )
        .bind(applied.version)
        .bind(&*applied.description)
        .bind(&*applied.checksum)
        .execute(&mut conn)
        .await
        .expect("record the first migration");
        conn.close().await.expect("close");
    }

    let store = SqliteHistoryStore::open(&url(&path))
        .await
        .expect("migrate");
    let read = store.get_message(&user, answer).await.expect("old message");
    assert_eq!((read.chat_id, read.seq), (chat, 2));
    let messages = store
        .list_messages(&user, chat, ListOptions::latest(10))
        .await
        .expect("newest first");
    assert_eq!(
        messages.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        [answer, question]
    );
    // What the old replies recorded seeds the all-time ledger.
    let totals = store.usage(&user).await.expect("usage");
    assert_eq!((totals.conversations, totals.messages), (1, 2));
    assert_eq!(totals.usage, bedrock_chat_core::Usage::new(7, 7));
    assert_eq!(totals.calls, 1);
    // Another user may now use the old message ids.
    let other = random_user();
    let theirs = store
        .create_conversation(&other, NewConversation::new("theirs"))
        .await
        .expect("create");
    store
        .append(
            &other,
            AppendRequest::existing(theirs.id, vec![NewMessage::user("mine").with_id(answer)]),
        )
        .await
        .expect("the same id for another user");
    assert_eq!(
        store.get_message(&user, answer).await.expect("still there"),
        read
    );
}

#[tokio::test]
async fn from_url_opens_a_file_and_memory() {
    let path = fresh_file();
    for url in [format!("sqlite:{}", path.display()), url(&path)] {
        let store = bedrock_chat_store::from_url(&url)
            .await
            .expect("open by URL");
        assert_eq!(store.backend(), "sqlite");
        let user = random_user();
        let chat = store
            .create_conversation(&user, NewConversation::new("by url"))
            .await
            .expect("create");
        let direct = SqliteHistoryStore::open(&url).await.expect("reopen");
        let got = direct
            .get_conversation(&user, chat.id)
            .await
            .expect("read it back");
        assert_eq!(got.title, "by url");
    }
    let store = bedrock_chat_store::from_url("sqlite::memory:")
        .await
        .expect("in memory");
    store.ping().await.expect("ping");
}

#[tokio::test]
async fn a_database_from_before_parts_reads_as_plain_messages_without_cache_figures() {
    use bedrock_chat_core::parts::{ImageFormat, Part};
    use bedrock_chat_core::{MessageUpdate, Usage};
    use sqlx::Connection;
    // A file migrated up to the release before parts, with an exchange and a ledger row
    // as that release wrote them.
    let path = fresh_file();
    let user = random_user();
    let (chat, question, answer) = (
        bedrock_chat_core::ChatId::new(),
        bedrock_chat_core::MessageId::new(),
        bedrock_chat_core::MessageId::new(),
    );
    {
        let mut conn = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", url(&path)))
            .await
            .expect("create the file");
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        let before: Vec<_> = migrator
            .iter()
            .filter(|m| m.version < 20261123000000)
            .cloned()
            .collect();
        assert_eq!(before.len(), 2, "the two migrations before parts");
        migrator.migrations = before.into();
        migrator
            .run(&mut conn)
            .await
            .expect("the schema before parts");
        sqlx::query(
            "INSERT INTO conversations (id, user_id, title, system_prompt, metadata, \
             message_count, last_seq, created_at, updated_at) \
             VALUES (?, ?, 'old', NULL, '{}', 2, 2, 1000, 2000)",
        )
        .bind(chat.to_string())
        .bind(user.as_str())
        .execute(&mut conn)
        .await
        .expect("an old conversation");
        for (seq, id, role, tokens) in [
            (1, question, "user", None),
            (2, answer, "assistant", Some(7)),
        ] {
            sqlx::query(
                "INSERT INTO messages (user_id, id, chat_id, seq, role, content, input_tokens, \
                 output_tokens, total_tokens, metadata, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, 'text', ?, ?, ?, '{}', 2000, 2000)",
            )
            .bind(user.as_str())
            .bind(id.to_string())
            .bind(chat.to_string())
            .bind(seq)
            .bind(role)
            .bind(tokens)
            .bind(tokens)
            .bind(tokens.map(|t| 2 * t))
            .execute(&mut conn)
            .await
            .expect("an old message");
        }
        sqlx::query(
            "INSERT INTO usage_ledger (user_id, day, input_tokens, output_tokens, \
             total_tokens, calls) VALUES (?1, '2025-09-01', 7, 7, 14, 1), \
             (?1, 'total', 7, 7, 14, 1)",
        )
        .bind(user.as_str())
        .execute(&mut conn)
        .await
        .expect("old ledger rows");
        conn.close().await.expect("close");
    }

    let store = SqliteHistoryStore::open(&url(&path))
        .await
        .expect("migrate");
    let read = store.get_message(&user, answer).await.expect("old reply");
    assert!(read.parts.is_empty());
    assert_eq!(read.usage, Some(Usage::new(7, 7)));
    let edited = store
        .update_message(&user, question, MessageUpdate::new().with_content("edited"))
        .await
        .expect("edit an old message");
    assert!(edited.parts.is_empty(), "an old message stays plain");

    // The old ledger rows go on adding, cache figures from 0.
    let day = chrono::NaiveDate::from_ymd_opt(2025, 9, 1).expect("a date");
    let at = day.and_hms_opt(12, 0, 0).expect("a time").and_utc();
    store
        .record_usage(&user, at, Usage::new(1, 1).with_cache(30, 4))
        .await
        .expect("record");
    let expected = Usage::new(7, 7).saturating_add(Usage::new(1, 1).with_cache(30, 4));
    let days = store.daily_usage(&user, day, day).await.expect("daily");
    assert_eq!((days[0].usage, days[0].calls), (expected, 2));
    let totals = store.usage(&user).await.expect("usage");
    assert_eq!((totals.usage, totals.calls), (expected, 2));

    // New messages with parts sit beside the old ones.
    let with_parts = NewMessage::user("").with_parts(vec![
        Part::image(ImageFormat::Png, vec![0, 1, 2]),
        Part::text("new"),
    ]);
    store
        .append(
            &user,
            AppendRequest::existing(chat, vec![with_parts.clone()]),
        )
        .await
        .expect("append with parts");
    let all = store
        .list_messages(&user, chat, ListOptions::first(10))
        .await
        .expect("list")
        .items;
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].parts, with_parts.parts);
    assert!(all[..2].iter().all(|m| m.parts.is_empty()));
}
