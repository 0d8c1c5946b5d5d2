//! [`DynamoDbHistoryStore`]: conversations and messages in one DynamoDB table.
//!
//! # Table layout (single-table design)
//! | item | `pk` | `sk` | holds |
//! |---|---|---|---|
//! | conversation | `U#{user}` | `C#{chat_id}` | title, prompt, metadata, counts, token sums, times, `created_key` |
//! | chat id owner | `CH#{chat_id}` | `#OWNER` | the owning user: chat ids are unique across users |
//! | message | `CH#{chat_id}` | `M#{seq:020}` | one message; its text, or the first piece of it |
//! | text piece | `CH#{chat_id}` | `P#{seq:020}#{n:04}` | more of a long message's text |
//! | message id | `MI#{message_id}` | `#` | where the message is: chat, seq, user |
//!
//! One item per message, never one growing item per conversation (the 400 KB item limit
//! and lost concurrent writes are what sink LangChain's DynamoDB history); text longer than
//! 300 KB is kept in pieces of its own. A local secondary index `by_created` on
//! (`pk`, `created_key`) lists a user's conversations newest first with a strongly
//! consistent Query; nothing is ever a Scan. Every read starts from the acting user's own
//! partition or checks the owner recorded on the item, so no request reaches another
//! user's data whatever ids it names.
//!
//! # Appends
//! An append is a transaction with conditions (`TransactWriteItems`): every message and
//! message-id item must not exist yet, the conversation must (or, when it is created by the
//! append, must not). Sequence numbers are reserved first with one atomic counter update,
//! so concurrent appends never retry against each other. A retried append (all ids stored
//! in this conversation) returns the stored messages and writes nothing; an append that
//! fails its conditions writes nothing either, though the numbers it reserved stay unused.
//!
//! # Limits
//! A transaction carries at most 100 items and 4 MB: an append of a few messages of up to
//! about 1 MB each fits. Metadata, title and system prompt must fit in one item beside the
//! first piece of text (about 90 KB).
//!
//! [`DynamoDbHistoryStore::create_table`] makes the table (on-demand billing, TTL on
//! `expires_at`). With [`DynamoDbConfig::ttl`] set, every item written carries an expiry
//! that long after the write (DynamoDB removes expired items within a day or two).

mod error;
mod items;
mod store;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use bedrock_chat_core::{Clock, StoreError, SystemClock};

use error::{build_error, classify};

const BACKEND: &str = "dynamodb";

/// Settings of a [`DynamoDbHistoryStore`].
#[derive(Clone, Debug)]
pub struct DynamoDbConfig {
    /// The table's name.
    pub table: String,
    /// Items expire this long after they are written; `None` keeps them.
    pub ttl: Option<Duration>,
}

impl DynamoDbConfig {
    /// A table named `table`, items kept for ever.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            ttl: None,
        }
    }

    /// Items expire `ttl` after they are written.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// A [`HistoryStore`](bedrock_chat_core::HistoryStore) in DynamoDB.
///
/// ```no_run
/// use bedrock_chat_core::{HistoryStore, NewConversation, UserId};
/// use bedrock_chat_store::{DynamoDbConfig, DynamoDbHistoryStore};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let aws = aws_config::load_from_env().await;
/// let client = aws_sdk_dynamodb::Client::new(&aws);
/// DynamoDbHistoryStore::create_table(&client, "chat-history").await?;
/// let store = DynamoDbHistoryStore::new(client, DynamoDbConfig::new("chat-history"));
/// let alice = UserId::new("alice")?;
/// store.create_conversation(&alice, NewConversation::new("Hello")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct DynamoDbHistoryStore {
    client: Client,
    table: Arc<str>,
    ttl: Option<Duration>,
    clock: Arc<dyn Clock>,
}

impl DynamoDbHistoryStore {
    /// A store over the table `config` names, on the system clock.
    pub fn new(client: Client, config: DynamoDbConfig) -> Self {
        Self {
            client,
            table: config.table.into(),
            ttl: config.ttl,
            clock: Arc::new(SystemClock),
        }
    }

    /// Stamps times from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Creates a table laid out for this store: on-demand billing, the `by_created`
    /// index, TTL on `expires_at`. An existing table of that name is left as it is.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when DynamoDB cannot be reached;
    /// [`StoreError::Backend`] when it refuses.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let string = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(build_error)
        };
        let by_created = LocalSecondaryIndex::builder()
            .index_name(items::BY_CREATED)
            .key_schema(key(items::PK, KeyType::Hash)?)
            .key_schema(key(items::CREATED_KEY, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(build_error)?;
        let created = client
            .create_table()
            .table_name(table)
            .attribute_definitions(string(items::PK)?)
            .attribute_definitions(string(items::SK)?)
            .attribute_definitions(string(items::CREATED_KEY)?)
            .key_schema(key(items::PK, KeyType::Hash)?)
            .key_schema(key(items::SK, KeyType::Range)?)
            .local_secondary_indexes(by_created)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if error::code(&e) == Some("ResourceInUseException") => return Ok(()),
            Err(e) => return Err(classify(e)),
        }
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(items::EXPIRES)
            .build()
            .map_err(build_error)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}
