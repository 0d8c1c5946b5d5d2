//! The history store conformance suite on [`DynamoDbHistoryStore`] against the moto
//! DynamoDB server that `scripts/test` starts, plus the table layout, TTL, long texts, an
//! unreachable endpoint, and, through a fault-injecting proxy, what real DynamoDB does
//! that moto does not: transactions cancelled for conflicts, throttling and conditions,
//! and appends racing from many writers.
#![cfg(feature = "dynamodb")]

mod fault_proxy;

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::Client;
use bedrock_chat_core::conformance::store::{StoreCapabilities, StoreUnderTest};
use bedrock_chat_core::conformance::{random_user, service_url, unique_prefix};
use bedrock_chat_core::{
    AppendRequest, ChatId, Cursor, HistoryStore, ListOptions, MessageId, MessageUpdate,
    NewConversation, NewMessage, StoreError, Usage, UserId,
};
use bedrock_chat_store::{DynamoDbConfig, DynamoDbHistoryStore};
use fault_proxy::{Fault, FaultProxy};

async fn client(endpoint: &str) -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    Client::new(&config)
}

/// A fresh table: names allow letters, digits, `_`, `-` and `.`.
async fn table() -> (Client, String) {
    let client = client(&service_url("BEDROCK_CHAT_TEST_DYNAMODB_ENDPOINT")).await;
    let name = unique_prefix().replace(':', "-");
    DynamoDbHistoryStore::create_table(&client, &name)
        .await
        .expect("create the history table");
    (client, name)
}

async fn dynamodb() -> StoreUnderTest {
    let (client, name) = table().await;
    StoreUnderTest::new(
        DynamoDbHistoryStore::new(client, DynamoDbConfig::new(name)),
        StoreCapabilities { nul_in_text: true },
    )
}

bedrock_chat_core::history_store_conformance!(dynamodb);

#[tokio::test]
async fn creating_the_table_twice_is_fine_and_it_has_the_listing_index() {
    let (client, name) = table().await;
    DynamoDbHistoryStore::create_table(&client, &name)
        .await
        .expect("again");
    let described = client
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("describe");
    let table = described.table().expect("a table");
    let indexes: Vec<&str> = table
        .local_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    assert_eq!(indexes, ["by_updated"]);
    let ttl = client
        .describe_time_to_live()
        .table_name(&name)
        .send()
        .await
        .expect("ttl");
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("expires_at")
    );
}

#[tokio::test]
async fn a_long_message_is_one_item_plus_pieces_never_one_growing_item() {
    let (client, name) = table().await;
    let store = DynamoDbHistoryStore::new(client.clone(), DynamoDbConfig::new(name.clone()));
    let user = random_user();
    let chat = store
        .create_conversation(&user, NewConversation::new("long"))
        .await
        .expect("create");
    let text = "λ".repeat(400_000); // 800 KB
    let messages = vec![
        NewMessage::user(text.clone()),
        NewMessage::assistant("short"),
    ];
    store
        .append(&user, AppendRequest::existing(chat.id, messages))
        .await
        .expect("append");
    let partition = client
        .query()
        .table_name(&name)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("CH#{}", chat.id)),
        )
        .send()
        .await
        .expect("query");
    let kinds: Vec<String> = partition
        .items()
        .iter()
        .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()))
        .map(|sk| sk.split('#').next().unwrap_or_default().to_owned())
        .collect();
    // The owner marker, two messages, and two pieces of the long one (3 x 300 KB cap).
    assert_eq!(kinds.iter().filter(|k| *k == "M").count(), 2);
    assert_eq!(kinds.iter().filter(|k| *k == "P").count(), 2);
    let recent = store
        .recent_messages(&user, chat.id, 2)
        .await
        .expect("recent");
    assert!(recent[0].content == text);
}

/// The sort keys of a conversation's partition, by kind (`M`, `P`, `Q`, ...), and its
/// items.
async fn partition(
    client: &Client,
    name: &str,
    chat: ChatId,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    client
        .query()
        .table_name(name)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("CH#{chat}")),
        )
        .send()
        .await
        .expect("query")
        .items()
        .to_vec()
}

fn count_kind(
    items: &[std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>],
    kind: &str,
) -> usize {
    items
        .iter()
        .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()))
        .filter(|sk| sk.split('#').next() == Some(kind))
        .count()
}

#[tokio::test]
async fn large_parts_go_in_pieces_and_plain_messages_store_no_parts_or_cache_attributes() {
    use bedrock_chat_core::parts::{ImageFormat, Part};
    let (client, name) = table().await;
    let store = DynamoDbHistoryStore::new(client.clone(), DynamoDbConfig::new(name.clone()));
    let user = random_user();
    let chat = store
        .create_conversation(&user, NewConversation::new("attachments"))
        .await
        .expect("create");
    // 600 KB of bytes is 800 KB of base64: more than one item holds.
    let image: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let big = NewMessage::user("").with_parts(vec![
        Part::text("look"),
        Part::image(ImageFormat::Png, image),
    ]);
    let small = NewMessage::user("").with_parts(vec![
        Part::image(ImageFormat::Gif, vec![1, 2]),
        Part::text("tiny"),
    ]);
    let plain = NewMessage::assistant("plain").with_usage(Usage::new(3, 4));
    store
        .append(
            &user,
            AppendRequest::existing(chat.id, vec![big.clone(), small.clone(), plain.clone()]),
        )
        .await
        .expect("append");
    let items = partition(&client, &name, chat.id).await;
    assert_eq!(count_kind(&items, "M"), 3);
    assert_eq!(
        count_kind(&items, "Q"),
        3,
        "800 KB of parts in three pieces"
    );
    let message = |id: bedrock_chat_core::MessageId| {
        items
            .iter()
            .find(|i| i.get("id").and_then(|v| v.as_s().ok()) == Some(&id.to_string()))
            .expect("the message item")
            .clone()
    };
    assert!(!message(big.id).contains_key("parts"));
    assert!(
        message(small.id).contains_key("parts"),
        "small parts stay in the item"
    );
    let plain_item = message(plain.id);
    for absent in ["parts", "parts_pieces", "cache_read", "cache_write"] {
        assert!(
            !plain_item.contains_key(absent),
            "a plain message has no {absent}"
        );
    }

    let all = store
        .list_messages(&user, chat.id, ListOptions::first(10))
        .await
        .expect("list")
        .items;
    assert!(all[0].parts == big.parts);
    assert_eq!(all[1].parts, small.parts);
    assert!(all[2].parts.is_empty());

    // An edit keeps the attachment; deleting the message removes its pieces.
    let edited = store
        .update_message(&user, big.id, MessageUpdate::new().with_content("edited"))
        .await
        .expect("edit");
    assert_eq!(edited.content, "edited");
    assert_eq!(edited.parts.len(), 2);
    assert!(edited.parts[1] == big.parts[1]);
    assert_eq!(store.get_message(&user, big.id).await.expect("get"), edited);
    store.delete_message(&user, big.id).await.expect("delete");
    let items = partition(&client, &name, chat.id).await;
    assert_eq!(count_kind(&items, "Q"), 0);
    assert_eq!(count_kind(&items, "M"), 2);
}

#[tokio::test]
async fn with_a_ttl_every_item_written_carries_an_expiry() {
    let (client, name) = table().await;
    let store = DynamoDbHistoryStore::new(
        client.clone(),
        DynamoDbConfig::new(name.clone()).with_ttl(Duration::from_secs(3600)),
    );
    let user = random_user();
    let new = NewConversation::new("short-lived");
    store
        .append(
            &user,
            AppendRequest::create_if_missing(new, vec![NewMessage::user("hi")]),
        )
        .await
        .expect("append");
    let all = client.scan().table_name(&name).send().await.expect("scan");
    assert!(!all.items().is_empty());
    let now = chrono::Utc::now().timestamp();
    for item in all.items() {
        let expires: i64 = item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("an item without expiry: {item:?}"));
        assert!(
            (now + 3500..=now + 3700).contains(&expires),
            "{expires} vs {now}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let store = DynamoDbHistoryStore::new(
        client(&format!("http://127.0.0.1:{port}")).await,
        DynamoDbConfig::new("nowhere"),
    );
    let result = store
        .get_conversation(&random_user(), bedrock_chat_core::ChatId::new())
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable { .. })),
        "{result:?}"
    );
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable { .. })
    ));
}

// --- Cancelled transactions, through the fault proxy ------------------------------------

const TRANSACT: &str = "TransactWriteItems";

fn fault(code: &'static str, position: usize) -> Fault {
    Fault {
        operation: TRANSACT,
        code,
        position,
    }
}

/// Short backoffs keep the retry tests quick.
fn quick(config: DynamoDbConfig) -> DynamoDbConfig {
    config.with_retries(10, Duration::from_millis(1), Duration::from_millis(20))
}

/// A fresh table, and a store that reaches it through a fault proxy.
async fn proxied(
    config: impl FnOnce(DynamoDbConfig) -> DynamoDbConfig,
) -> (DynamoDbHistoryStore, FaultProxy) {
    let (_, name) = table().await;
    let proxy = FaultProxy::start(&service_url("BEDROCK_CHAT_TEST_DYNAMODB_ENDPOINT")).await;
    let client = client(proxy.endpoint()).await;
    (
        DynamoDbHistoryStore::new(client, config(DynamoDbConfig::new(name))),
        proxy,
    )
}

async fn all_seqs(store: &DynamoDbHistoryStore, user: &UserId, chat: ChatId) -> Vec<u64> {
    store
        .list_messages(user, chat, ListOptions::first(1000))
        .await
        .expect("list")
        .items
        .iter()
        .map(|m| m.seq)
        .collect()
}

fn exchange() -> Vec<NewMessage> {
    let question = NewMessage::user("question");
    let answer = NewMessage::assistant("answer").replying_to(question.id);
    vec![question, answer]
}

#[tokio::test]
async fn a_transaction_conflict_is_retried_and_the_append_leaves_no_gap() {
    let (store, proxy) = proxied(quick).await;
    let user = random_user();
    let chat = store
        .create_conversation(&user, NewConversation::new("conflicts"))
        .await
        .expect("create");
    store
        .append(&user, AppendRequest::existing(chat.id, exchange()))
        .await
        .expect("first append");

    proxy.fail_next(2, fault("TransactionConflict", 0));
    let before = proxy.seen(TRANSACT);
    let appended = store
        .append(&user, AppendRequest::existing(chat.id, exchange()))
        .await
        .expect("an append whose transaction conflicted twice");
    assert!(!appended.already_stored);
    assert_eq!(
        appended.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [3, 4]
    );
    assert_eq!(proxy.injected(TRANSACT), 2);
    assert_eq!(
        proxy.seen(TRANSACT) - before,
        3,
        "two conflicts, then the commit"
    );
    assert_eq!(all_seqs(&store, &user, chat.id).await, [1, 2, 3, 4]);
    let conversation = store.get_conversation(&user, chat.id).await.expect("get");
    assert_eq!(conversation.message_count, 4);
}

#[tokio::test]
async fn throttling_cancellations_are_retried_for_every_write() {
    let (store, proxy) = proxied(quick).await;
    let user = random_user();

    proxy.fail_next(1, fault("ThrottlingError", 1));
    let chat = store
        .create_conversation(&user, NewConversation::new("throttled"))
        .await
        .expect("create, throttled once");
    store
        .get_conversation(&user, chat.id)
        .await
        .expect("it exists");

    proxy.fail_next(1, fault("ProvisionedThroughputExceeded", 0));
    let new = NewConversation::new("created by an append");
    let created = store
        .append(&user, AppendRequest::create_if_missing(new, exchange()))
        .await
        .expect("append creating its conversation, throttled once");
    assert_eq!(
        created.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2]
    );

    let stored = store
        .append(&user, AppendRequest::existing(chat.id, exchange()))
        .await
        .expect("append")
        .messages;
    proxy.fail_next(1, fault("ThrottlingError", 0));
    let edit = MessageUpdate::new().with_content("edited");
    let edited = store
        .update_message(&user, stored[0].id, edit)
        .await
        .expect("edit, throttled once");
    assert_eq!(edited.content, "edited");

    proxy.fail_next(1, fault("TransactionConflict", 2));
    store
        .delete_message(&user, stored[1].id)
        .await
        .expect("delete, in conflict once");
    assert!(matches!(
        store.get_message(&user, stored[1].id).await,
        Err(StoreError::NotFound { .. })
    ));

    proxy.fail_next(1, fault("ThrottlingError", 1));
    store
        .record_usage(&user, chrono::Utc::now(), Usage::new(3, 4))
        .await
        .expect("record usage, throttled once");
    let totals = store.usage(&user).await.expect("usage");
    assert_eq!((totals.usage, totals.calls), (Usage::new(3, 4), 1));
    assert_eq!(proxy.injected(TRANSACT), 5);
}

#[tokio::test]
async fn single_item_writes_retry_a_conflict_with_a_committing_transaction() {
    let (store, proxy) = proxied(quick).await;
    let user = random_user();
    let chat = store
        .create_conversation(&user, NewConversation::new("before"))
        .await
        .expect("create");
    let conflict = |operation| Fault {
        operation,
        code: "TransactionConflictException",
        position: 0,
    };
    proxy.fail_next(2, conflict("UpdateItem"));
    let update = bedrock_chat_core::ConversationUpdate::new().with_title("after");
    let updated = store
        .update_conversation(&user, chat.id, update)
        .await
        .expect("update, in conflict twice");
    assert_eq!(updated.title, "after");
    assert_eq!(proxy.injected("UpdateItem"), 2);

    proxy.fail_next(1, conflict("DeleteItem"));
    store
        .delete_conversation(&user, chat.id)
        .await
        .expect("delete, in conflict once");
    assert!(matches!(
        store.get_conversation(&user, chat.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(proxy.injected("DeleteItem"), 1);
}

#[tokio::test]
async fn a_failed_condition_is_the_domain_error_and_is_not_retried() {
    let (store, proxy) = proxied(quick).await;
    let user = random_user();

    proxy.fail_next(1, fault("ConditionalCheckFailed", 0));
    let new = NewConversation::new("taken");
    let id = new.id;
    let before = proxy.seen(TRANSACT);
    let result = store.create_conversation(&user, new).await;
    assert!(
        matches!(result, Err(StoreError::Conflict { .. })),
        "{result:?}"
    );
    assert_eq!(
        proxy.seen(TRANSACT) - before,
        1,
        "a failed condition is final"
    );
    assert!(matches!(
        store.get_conversation(&user, id).await,
        Err(StoreError::NotFound { .. })
    ));

    let chat = store
        .create_conversation(&user, NewConversation::new("kept"))
        .await
        .expect("create");
    let stored = store
        .append(&user, AppendRequest::existing(chat.id, exchange()))
        .await
        .expect("append")
        .messages;
    proxy.fail_next(1, fault("ConditionalCheckFailed", 0));
    let edit = MessageUpdate::new().with_content("never");
    let result = store.update_message(&user, stored[0].id, edit).await;
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "{result:?}"
    );
    proxy.fail_next(1, fault("ConditionalCheckFailed", 0));
    let result = store.delete_message(&user, stored[1].id).await;
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "{result:?}"
    );
    // Nothing was written.
    let messages = store
        .list_messages(&user, chat.id, ListOptions::first(10))
        .await
        .expect("list")
        .items;
    assert_eq!(messages, stored);
}

#[tokio::test]
async fn an_append_that_loses_the_race_for_its_sequence_numbers_reads_again() {
    let (store, proxy) = proxied(quick).await;
    let user = random_user();
    let chat = store
        .create_conversation(&user, NewConversation::new("race"))
        .await
        .expect("create");
    store
        .append(&user, AppendRequest::existing(chat.id, exchange()))
        .await
        .expect("append");
    // As if another writer had moved `last_seq` on between the read and the write.
    proxy.fail_next(1, fault("ConditionalCheckFailed", 0));
    let appended = store
        .append(&user, AppendRequest::existing(chat.id, exchange()))
        .await
        .expect("append after a lost race");
    assert_eq!(
        appended.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [3, 4]
    );
    assert_eq!(all_seqs(&store, &user, chat.id).await, [1, 2, 3, 4]);
}

#[tokio::test]
async fn conflicts_that_do_not_end_are_unavailable_after_the_configured_attempts() {
    let (store, proxy) = proxied(|config| {
        config.with_retries(4, Duration::from_millis(1), Duration::from_millis(5))
    })
    .await;
    let user = random_user();
    let chat = store
        .create_conversation(&user, NewConversation::new("hot"))
        .await
        .expect("create");
    proxy.fail_next(1000, fault("TransactionConflict", 0));
    let before = proxy.seen(TRANSACT);
    let result = store
        .append(&user, AppendRequest::existing(chat.id, exchange()))
        .await;
    match result {
        Err(error @ StoreError::Unavailable { .. }) => assert!(error.is_retryable()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(proxy.seen(TRANSACT) - before, 4, "the configured attempts");

    // A create that keeps conflicting is unavailable, never "the id is taken".
    let before = proxy.seen(TRANSACT);
    let result = store
        .create_conversation(&user, NewConversation::new("never"))
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable { .. })),
        "{result:?}"
    );
    assert_eq!(proxy.seen(TRANSACT) - before, 4);
}

/// 8 writers, each its own store (as if in its own process, so they really race), make
/// 10 appends each to one conversation while the proxy adds a conflict now and then; a
/// reader pages through by keyset all along. Sequence numbers are allocated inside the
/// transactions, so messages commit in order: the reader sees every sequence number
/// once, in order, never one before the one below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interleaved_appends_never_hide_a_message_from_a_keyset_reader() {
    const WRITERS: usize = 8;
    const APPENDS: usize = 10;
    let (_, name) = table().await;
    let proxy = FaultProxy::start(&service_url("BEDROCK_CHAT_TEST_DYNAMODB_ENDPOINT")).await;
    proxy.fail_every(7, fault("TransactionConflict", 0));
    let client = client(proxy.endpoint()).await;
    // Eight writers to one conversation is far past a chat's contention: room to retry.
    let store = || {
        DynamoDbHistoryStore::new(
            client.clone(),
            DynamoDbConfig::new(name.clone()).with_retries(
                60,
                Duration::from_millis(2),
                Duration::from_millis(50),
            ),
        )
    };
    let user = random_user();
    let chat = store()
        .create_conversation(&user, NewConversation::new("busy"))
        .await
        .expect("create");
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let reader = {
        let (store, user, done) = (store(), user.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut seen: Vec<(u64, MessageId)> = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                loop {
                    let options = match seen.last() {
                        Some((seq, _)) => ListOptions::after(5, Cursor::after_seq(*seq)),
                        None => ListOptions::first(5),
                    };
                    let page = store
                        .list_messages(&user, chat.id, options)
                        .await
                        .expect("read a page");
                    for message in &page.items {
                        let expected = seen.len() as u64 + 1;
                        assert_eq!(
                            message.seq, expected,
                            "the reader saw seq {} while {expected} was not visible yet",
                            message.seq
                        );
                        seen.push((message.seq, message.id));
                    }
                    if page.next_cursor.is_none() {
                        break;
                    }
                }
                if finished {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, user) = (store(), user.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..APPENDS {
                    let message = NewMessage::user(format!("writer {w} message {i}"));
                    ids.push(message.id);
                    let appended = store
                        .append(&user, AppendRequest::existing(chat.id, vec![message]))
                        .await
                        .expect("append");
                    assert!(!appended.already_stored);
                }
                ids
            })
        })
        .collect();
    let mut written = HashSet::new();
    for writer in writers {
        written.extend(writer.await.expect("writer"));
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.expect("reader");

    let total = (WRITERS * APPENDS) as u64;
    assert_eq!(
        seen.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let seen_ids: HashSet<MessageId> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(seen_ids, written, "every message seen once");
    assert!(proxy.injected(TRANSACT) > 0, "the proxy added conflicts");
    let conversation = store().get_conversation(&user, chat.id).await.expect("get");
    assert_eq!(conversation.message_count, total);
}

/// `from_url` reads credentials from the environment, as a server would; moto takes any.
fn require_credentials() {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        panic!("AWS_ACCESS_KEY_ID is not set: run scripts/test, which sets moto's credentials");
    }
}

#[tokio::test]
async fn from_url_creates_a_missing_table_and_reuses_an_existing_one() {
    require_credentials();
    let endpoint = service_url("BEDROCK_CHAT_TEST_DYNAMODB_ENDPOINT");
    let name = unique_prefix().replace(':', "-");
    let url = format!("dynamodb://{name}?endpoint={endpoint}&region=us-east-1");
    let store = bedrock_chat_store::from_url(&url)
        .await
        .expect("connect by URL, creating the table");
    assert_eq!(store.backend(), "dynamodb");
    store.ping().await.expect("ping");
    let user = random_user();
    let chat = store
        .create_conversation(&user, NewConversation::new("by url"))
        .await
        .expect("create");
    let described = client(&endpoint)
        .await
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("the table exists");
    assert!(described.table().is_some());
    let again = bedrock_chat_store::from_url(&url)
        .await
        .expect("connect to the existing table");
    let got = again
        .get_conversation(&user, chat.id)
        .await
        .expect("read it back");
    assert_eq!(got.title, "by url");
}

#[tokio::test]
async fn from_url_to_an_unreachable_endpoint_is_a_retryable_connect_error() {
    require_credentials();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("dynamodb://chats?endpoint=http://127.0.0.1:{port}&region=us-east-1");
    let err = bedrock_chat_store::from_url(&url)
        .await
        .err()
        .expect("nothing listens there");
    assert!(
        matches!(
            err,
            bedrock_chat_store::StoreUrlError::Connect {
                backend: "dynamodb",
                error: StoreError::Unavailable { .. }
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}
