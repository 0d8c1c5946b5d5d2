//! The history store conformance suite on [`PostgresHistoryStore`], and what only
//! PostgreSQL has: migrations, reconnecting, losing connections, NUL refusal on every write.
#![cfg(feature = "postgres")]

use std::sync::Arc;

use bedrock_chat_core::conformance::store::{StoreCapabilities, StoreUnderTest};
use bedrock_chat_core::conformance::{random_user, service_url};
use bedrock_chat_core::{
    AppendRequest, ConversationUpdate, HistoryStore, ListOptions, MessageUpdate, NewConversation,
    NewMessage, StoreError,
};
use bedrock_chat_store::{PostgresConfig, PostgresHistoryStore};
use sqlx::Connection;

fn url() -> String {
    service_url("BEDROCK_CHAT_TEST_POSTGRES_URL")
}

/// Small pools: every case makes its own store, and the cases run in parallel.
fn config() -> PostgresConfig {
    PostgresConfig::new(url()).with_max_connections(3)
}

async fn postgres() -> StoreUnderTest {
    let store = PostgresHistoryStore::connect(config())
        .await
        .expect("connect to PostgreSQL");
    // PostgreSQL text and jsonb cannot hold NUL.
    StoreUnderTest::new(store, StoreCapabilities { nul_in_text: false })
}

bedrock_chat_core::history_store_conformance!(postgres);

async fn direct() -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&url())
        .await
        .expect("connect directly")
}

#[tokio::test]
async fn migrations_are_applied_on_connect_and_reconnecting_keeps_the_data() {
    let user = random_user();
    let store = PostgresHistoryStore::connect(config())
        .await
        .expect("connect");
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
    store.pool().close().await;
    drop(store);

    // Connecting again runs the migrator again: it finds nothing to do and keeps the data.
    let again = PostgresHistoryStore::connect(config())
        .await
        .expect("reconnect");
    let read = again
        .get_conversation(&user, chat.id)
        .await
        .expect("the conversation survives");
    assert_eq!((read.title.as_str(), read.message_count), ("kept", 1));
    let messages = again
        .list_messages(&user, chat.id, ListOptions::first(10))
        .await
        .expect("list");
    assert_eq!(messages.items, stored);

    let mut conn = direct().await;
    let (applied,): (i64,) = sqlx::query_as("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .expect("read the migration table");
    let expected = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("list migrations")
        .count();
    assert_eq!(applied, expected as i64);
    let (function,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM pg_proc WHERE proname = 'bedrock_chat_append'")
            .fetch_one(&mut conn)
            .await
            .expect("look up the append function");
    // The 19-argument one this release calls, and the 16-argument one that releases from
    // before parts still call against the same database.
    assert_eq!(function, 2);
}

#[tokio::test]
async fn messages_an_older_release_appends_read_as_plain_without_cache_figures() {
    use bedrock_chat_core::parts::{ImageFormat, Part};
    use bedrock_chat_core::Usage;
    let user = random_user();
    let store = PostgresHistoryStore::connect(config())
        .await
        .expect("connect");
    let chat = store
        .create_conversation(&user, NewConversation::new("mixed releases"))
        .await
        .expect("create");
    // An append through the 16-argument function, as a release from before parts makes
    // it: no parts, no cache counts.
    let (question, answer) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let mut conn = direct().await;
    let rows = sqlx::query(
        "SELECT * FROM bedrock_chat_append($1, $2, false, NULL, NULL, NULL, now(), $3, \
         ARRAY['user', 'assistant'], ARRAY['q', 'a'], ARRAY[NULL, $4]::uuid[], \
         ARRAY[NULL, 'm'], ARRAY[NULL, 5]::bigint[], ARRAY[NULL, 6]::bigint[], \
         ARRAY[NULL, 11]::bigint[], ARRAY['{}', '{}']::jsonb[])",
    )
    .bind(user.as_str())
    .bind(chat.id.as_uuid())
    .bind(vec![question, answer])
    .bind(question)
    .fetch_all(&mut conn)
    .await
    .expect("an append as an older release makes it");
    assert_eq!(rows.len(), 2);

    let reply = store
        .get_message(&user, bedrock_chat_core::MessageId::from_uuid(answer))
        .await
        .expect("the older release's reply");
    assert!(reply.parts.is_empty());
    assert_eq!(reply.usage, Some(Usage::new(5, 6)));
    let edited = store
        .update_message(
            &user,
            bedrock_chat_core::MessageId::from_uuid(question),
            MessageUpdate::new().with_content("edited"),
        )
        .await
        .expect("edit");
    assert!(edited.parts.is_empty(), "a plain message stays plain");
    let (parts_null,): (bool,) =
        sqlx::query_as("SELECT parts IS NULL FROM messages WHERE user_id = $1 AND id = $2")
            .bind(user.as_str())
            .bind(question)
            .fetch_one(&mut conn)
            .await
            .expect("read the row");
    assert!(parts_null, "plain messages store NULL, not []");

    // This release's messages with parts sit beside them.
    let with_parts = NewMessage::user("").with_parts(vec![
        Part::image(ImageFormat::Png, vec![0, 1]),
        Part::text("new"),
    ]);
    store
        .append(
            &user,
            AppendRequest::existing(chat.id, vec![with_parts.clone()]),
        )
        .await
        .expect("append with parts");
    let all = store
        .list_messages(&user, chat.id, ListOptions::first(10))
        .await
        .expect("list")
        .items;
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].parts, with_parts.parts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_connection_is_unavailable_and_the_store_recovers() {
    let name = format!("bctest-{}", uuid::Uuid::new_v4().simple());
    // One connection, so the terminated one is the one the next call gets.
    let store = PostgresHistoryStore::connect(
        config()
            .with_max_connections(1)
            .with_application_name(name.clone()),
    )
    .await
    .expect("connect");
    let user = random_user();
    let chat = store
        .create_conversation(&user, NewConversation::new("outage"))
        .await
        .expect("create");

    let mut admin = direct().await;
    let terminated: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&name)
    .fetch_all(&mut admin)
    .await
    .expect("terminate the store's connections");
    assert_eq!(terminated, vec![(true,)], "the pool's one connection");

    match store.get_conversation(&user, chat.id).await {
        Err(
            e @ StoreError::Unavailable {
                backend: "postgres",
                ..
            },
        ) => {
            assert!(e.is_retryable());
            assert_eq!(e.http_status(), 503);
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // The broken connection is replaced: the same call works again.
    let read = store
        .get_conversation(&user, chat.id)
        .await
        .expect("works again");
    assert_eq!(read.title, "outage");
    store
        .append(
            &user,
            AppendRequest::existing(chat.id, vec![NewMessage::user("back")]),
        )
        .await
        .expect("append after the outage");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let result = PostgresHistoryStore::connect(
        PostgresConfig::new("postgres://postgres@127.0.0.1:9/nowhere")
            .with_acquire_timeout(std::time::Duration::from_secs(2)),
    )
    .await;
    assert!(
        matches!(
            result,
            Err(StoreError::Unavailable {
                backend: "postgres",
                ..
            })
        ),
        "expected Unavailable, got {result:?}"
    );
}

#[tokio::test]
async fn nul_is_refused_on_every_write_and_nothing_changes() {
    let store = PostgresHistoryStore::connect(config())
        .await
        .expect("connect");
    let user = random_user();
    let with_nul = NewConversation::new("a\0b");
    assert!(matches!(
        store.create_conversation(&user, with_nul.clone()).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.get_conversation(&user, with_nul.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .append(
                &user,
                AppendRequest::create_if_missing(with_nul.clone(), vec![NewMessage::user("q")])
            )
            .await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.get_conversation(&user, with_nul.id).await,
        Err(StoreError::NotFound { .. })
    ));

    let chat = store
        .create_conversation(&user, NewConversation::new("clean"))
        .await
        .expect("create");
    let mut metadata = bedrock_chat_core::Metadata::new();
    metadata.insert("deep".into(), serde_json::json!([{"x": "nul\u{0}"}]));
    let update = ConversationUpdate::new().with_metadata(metadata.clone());
    match store.update_conversation(&user, chat.id, update).await {
        Err(StoreError::InvalidInput(e)) => assert_eq!(e.field, "metadata"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    let message = store
        .append(
            &user,
            AppendRequest::existing(chat.id, vec![NewMessage::user("clean")]),
        )
        .await
        .expect("append")
        .messages
        .remove(0);
    let edit = MessageUpdate::new().with_content("x\0");
    match store.update_message(&user, message.id, edit).await {
        Err(StoreError::InvalidInput(e)) => assert_eq!(e.field, "content"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(
        store.get_message(&user, message.id).await.expect("get"),
        message
    );
    let read = store.get_conversation(&user, chat.id).await.expect("get");
    assert_eq!(
        (read.title.as_str(), read.metadata.is_empty()),
        ("clean", true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_that_create_one_conversation_create_it_once() {
    let store: Arc<dyn HistoryStore> = Arc::new(
        PostgresHistoryStore::connect(config())
            .await
            .expect("connect"),
    );
    let user = random_user();
    let new = NewConversation::new("raced");
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, user, new) = (Arc::clone(&store), user.clone(), new.clone());
            tokio::spawn(async move {
                let request =
                    AppendRequest::create_if_missing(new, vec![NewMessage::user(format!("m{i}"))]);
                store.append(&user, request).await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("append");
    }
    let chat = store.get_conversation(&user, new.id).await.expect("get");
    assert_eq!(chat.message_count, 20);
    let page = store
        .list_conversations(&user, ListOptions::first(10))
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn listings_are_served_by_the_indexes_in_order() {
    let mut conn = direct().await;
    // Tables of a test database are tiny; forbid sequential scans to see which index
    // the planner can use, and that it needs no sort on top.
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut conn)
        .await
        .expect("set");
    // Make sure the schema exists even when this test runs first.
    PostgresHistoryStore::connect(config())
        .await
        .expect("connect");
    let plans = [
        "EXPLAIN SELECT id FROM conversations WHERE user_id = 'u' \
         AND (created_at, id) < (now(), '018f0000-0000-7000-8000-000000000000'::uuid) \
         ORDER BY created_at DESC, id DESC LIMIT 21",
        "EXPLAIN SELECT id FROM messages WHERE chat_id = '018f0000-0000-7000-8000-000000000000'::uuid AND seq > 5 \
         ORDER BY seq LIMIT 51",
    ];
    for sql in plans {
        let lines: Vec<(String,)> = sqlx::query_as(sql)
            .fetch_all(&mut conn)
            .await
            .expect("explain");
        let plan: Vec<String> = lines.into_iter().map(|(l,)| l).collect();
        let plan = plan.join("\n");
        assert!(plan.contains("Index"), "no index scan:\n{plan}");
        assert!(
            !plan.contains("Sort"),
            "the index does not give the order:\n{plan}"
        );
    }
}

#[tokio::test]
async fn from_url_connects_migrates_and_keeps_what_it_writes() {
    for url in [url(), url().replacen("postgres://", "postgresql://", 1)] {
        let store = bedrock_chat_store::from_url(&url)
            .await
            .expect("connect by URL");
        assert_eq!(store.backend(), "postgres");
        store.ping().await.expect("ping");
        let user = random_user();
        let chat = store
            .create_conversation(&user, NewConversation::new("by url"))
            .await
            .expect("create");
        let direct = PostgresHistoryStore::connect(config())
            .await
            .expect("connect");
        let got = direct
            .get_conversation(&user, chat.id)
            .await
            .expect("read it back");
        assert_eq!(got.title, "by url");
    }
}

#[tokio::test]
async fn from_url_to_a_closed_port_is_a_retryable_connect_error() {
    let err = bedrock_chat_store::from_url("postgres://postgres@127.0.0.1:1/none")
        .await
        .err()
        .expect("nothing listens on port 1");
    assert!(
        matches!(
            err,
            bedrock_chat_store::StoreUrlError::Connect {
                backend: "postgres",
                error: StoreError::Unavailable { .. }
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}
