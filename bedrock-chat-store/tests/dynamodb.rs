//! The history store conformance suite on [`DynamoDbHistoryStore`] against the moto
//! DynamoDB server that `scripts/test` starts, plus the table layout, TTL, long texts and
//! an unreachable endpoint.
#![cfg(feature = "dynamodb")]

use std::net::TcpListener;
use std::time::Duration;

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::Client;
use bedrock_chat_core::conformance::store::{StoreCapabilities, StoreUnderTest};
use bedrock_chat_core::conformance::{random_user, service_url, unique_prefix};
use bedrock_chat_core::{AppendRequest, HistoryStore, NewConversation, NewMessage, StoreError};
use bedrock_chat_store::{DynamoDbConfig, DynamoDbHistoryStore};

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
    assert_eq!(indexes, ["by_created"]);
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
