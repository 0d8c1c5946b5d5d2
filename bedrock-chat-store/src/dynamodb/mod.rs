//! [`DynamoDbHistoryStore`]: conversations and messages in one DynamoDB table.
//!
//! # Table layout (single-table design)
//! | item | `pk` | `sk` | holds |
//! |---|---|---|---|
//! | conversation | `U#{user}` | `C#{chat_id}` | title, prompt, metadata, `count`, `last_seq`, times, `updated_key` |
//! | chat id owner | `CH#{chat_id}` | `#OWNER` | the owning user: chat ids are unique across users |
//! | message | `CH#{chat_id}` | `M#{seq:020}` | one message; its text, or the first piece of it; its parts as JSON (`parts`) when they fit beside it, else how many pieces they are in (`parts_pieces`); neither for a plain-text message |
//! | text piece | `CH#{chat_id}` | `P#{seq:020}#{n:04}` | more of a long message's text |
//! | parts piece | `CH#{chat_id}` | `Q#{seq:020}#{n:04}` | a piece of the parts JSON of a message whose parts did not fit in its item |
//! | message id | `MI#{user}#{message_id}` | `#` | where the user's message is: chat, seq |
//! | usage per day | `U#{user}` | `UD#{day}` | tokens (prompt-cache `cache_read` / `cache_write` only once used) and calls recorded on one UTC day |
//! | usage in total | `U#{user}` | `UT` | tokens and calls recorded, all time |
//!
//! One item per message, never one growing item per conversation (the 400 KB item limit
//! and lost concurrent writes are what sink LangChain's DynamoDB history); text longer than
//! 300 KB is kept in pieces of its own. A local secondary index `by_updated` on
//! (`pk`, `updated_key`) lists a user's conversations by last activity, newest first, with
//! a strongly consistent Query; nothing is ever a Scan. Message ids are keyed by user, so
//! two users may use the same id. Every read starts from the acting user's own partition
//! or checks the owner recorded on the item, so no request reaches another user's data
//! whatever ids it names.
//!
//! # Appends
//! An append reads the conversation (its `last_seq`) and the message ids in one consistent
//! batch read, then writes in one transaction (`TransactWriteItems`): the conversation's
//! `last_seq` moves from the value read to the new last message, on the condition that it
//! is still the value read, and every message and message-id item must not exist yet. So
//! sequence numbers are allocated inside the transaction: appends commit only in
//! sequence order and leave no gap, and a reader paging by sequence number never skips a
//! message that commits later. An append that lost the race reads again and retries
//! (bounded, with backoff); a retried append (all ids stored in this conversation) returns
//! the stored messages and writes nothing. Appends to one conversation through one store
//! (and its clones) take turns before they reach DynamoDB, so only appends from different
//! processes ever race.
//!
//! A cancelled transaction is read by its cancellation reasons, item by item: a
//! `ConditionalCheckFailed` is a real answer (NotFound, Conflict, or a lost race), while a
//! `TransactionConflict` or throttling reason is retried with exponential backoff and
//! jitter ([`DynamoDbConfig::with_retries`]) and, when that runs out,
//! [`StoreError::Unavailable`].
//!
//! # Usage ledger
//! [`record_usage`](bedrock_chat_core::HistoryStore::record_usage) adds to the user's day
//! item and total item in one transaction (`ADD`, so concurrent calls each count once);
//! deleting history never touches them.
//!
//! # Limits
//! A transaction carries at most 100 items and 4 MB: an append of a few messages of up to
//! about 1 MB each fits. Metadata, title and system prompt must fit in one item beside the
//! first piece of text (about 90 KB).
//!
//! [`DynamoDbHistoryStore::create_table`] makes the table (on-demand billing, TTL on
//! `expires_at`). With [`DynamoDbConfig::ttl`] set, every history item written carries an
//! expiry that long after the write (DynamoDB removes expired items within a day or two);
//! the usage ledger never expires.

mod append;
mod conversations;
mod error;
mod items;
mod messages;
mod queue;
mod retry;
mod store;
mod table;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    BillingMode, KeyType, LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use bedrock_chat_core::backend::dynamodb::{self, attribute};
use bedrock_chat_core::{Clock, StoreError, SystemClock};

use error::build_error;
use queue::AppendQueues;
use retry::RetryPolicy;

const BACKEND: &str = dynamodb::BACKEND;

/// Settings of a [`DynamoDbHistoryStore`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DynamoDbConfig {
    /// The table's name.
    pub table: String,
    /// Items expire this long after they are written; `None` keeps them.
    pub ttl: Option<Duration>,
    /// How many times a write is tried when DynamoDB cancels it for a conflict with
    /// another transaction or for throttling, and how many times an append is tried when
    /// a concurrent append to the same conversation took its sequence numbers first.
    pub max_attempts: u32,
    /// The backoff before the first retry; it doubles each retry, with jitter.
    pub initial_backoff: Duration,
    /// The longest backoff between two attempts.
    pub max_backoff: Duration,
}

impl DynamoDbConfig {
    /// A table named `table`, items kept for ever; 10 attempts per write, backing off
    /// from 10 ms up to 500 ms.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            ttl: None,
            max_attempts: 10,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(500),
        }
    }

    /// Items expire `ttl` after they are written.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Tries a write up to `max_attempts` times (at least once), backing off from
    /// `initial_backoff` (doubling, with jitter) up to `max_backoff` between attempts.
    pub fn with_retries(
        mut self,
        max_attempts: u32,
        initial_backoff: Duration,
        max_backoff: Duration,
    ) -> Self {
        self.max_attempts = max_attempts;
        self.initial_backoff = initial_backoff;
        self.max_backoff = max_backoff;
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
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    /// Appends to one conversation through this store and its clones take turns.
    appends: Arc<AppendQueues>,
}

impl DynamoDbHistoryStore {
    /// A store over the table `config` names, on the system clock.
    pub fn new(client: Client, config: DynamoDbConfig) -> Self {
        Self {
            client,
            table: config.table.into(),
            ttl: config.ttl,
            retry: RetryPolicy {
                max_attempts: config.max_attempts.max(1),
                initial: config.initial_backoff,
                max: config.max_backoff,
            },
            clock: Arc::new(SystemClock),
            appends: Arc::default(),
        }
    }

    /// Stamps times from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Creates a table laid out for this store: on-demand billing, the `by_updated`
    /// index, TTL on `expires_at`. An existing table of that name is left as it is.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when DynamoDB cannot be reached;
    /// [`StoreError::Backend`] when it refuses.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let string = |name: &str| attribute(name, ScalarAttributeType::S).map_err(build_error);
        let key = |name: &str, kind| dynamodb::key(name, kind).map_err(build_error);
        let by_updated = LocalSecondaryIndex::builder()
            .index_name(items::BY_UPDATED)
            .key_schema(key(items::PK, KeyType::Hash)?)
            .key_schema(key(items::UPDATED_KEY, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(build_error)?;
        let request = client
            .create_table()
            .table_name(table)
            .attribute_definitions(string(items::PK)?)
            .attribute_definitions(string(items::SK)?)
            .attribute_definitions(string(items::UPDATED_KEY)?)
            .key_schema(key(items::PK, KeyType::Hash)?)
            .key_schema(key(items::SK, KeyType::Range)?)
            .local_secondary_indexes(by_updated)
            .billing_mode(BillingMode::PayPerRequest);
        dynamodb::create_table(client, request, items::EXPIRES).await
    }
}
