//! A history store from a URL: [`from_url`] and [`StoreUrl`], so that every host (server,
//! CLI, Lambda) accepts the same `--store` values and reports a bad one the same way.
//!
//! | URL | backend | feature |
//! |---|---|---|
//! | `memory` | [`InMemoryHistoryStore`] | always |
//! | `sqlite:PATH`, `sqlite://PATH`, `sqlite::memory:` | `SqliteHistoryStore` | `sqlite` |
//! | `postgres://…`, `postgresql://…` | `PostgresHistoryStore` | `postgres` |
//! | `redis://…`, `rediss://…`, optional `?prefix=KEY_PREFIX` | `RedisHistoryStore` | `redis` |
//! | `dynamodb://TABLE?endpoint=URL&region=REGION` (both optional) | `DynamoDbHistoryStore` | `dynamodb` |
//!
//! Parsing ([`StoreUrl::parse`]) checks the syntax whatever features are on; connecting
//! refuses a backend whose feature this build lacks with
//! [`StoreUrlError::FeatureDisabled`], before any I/O. Connecting does what a server start
//! wants: the SQL stores apply their migrations, a missing DynamoDB table is created.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bedrock_chat_core::backend::error_chain;
pub use bedrock_chat_core::backend::url::UrlPart;
use bedrock_chat_core::backend::url::{self as parts, InvalidUrl};
use bedrock_chat_core::{HistoryStore, StoreError};

use crate::InMemoryHistoryStore;

/// The URL forms [`StoreUrl::parse`] accepts, for error messages.
const EXPECTED: &str = "memory, sqlite:PATH, postgres://..., postgresql://..., redis://..., \
                        rediss://... or dynamodb://TABLE";

/// A parsed store URL: which backend, and what it needs to connect.
///
/// ```
/// use bedrock_chat_store::StoreUrl;
///
/// let url: StoreUrl = "dynamodb://chat-history?region=eu-west-1".parse()?;
/// assert_eq!(
///     url,
///     StoreUrl::DynamoDb {
///         table: "chat-history".into(),
///         endpoint: None,
///         region: Some("eu-west-1".into()),
///     }
/// );
/// assert_eq!(url.backend(), "dynamodb");
/// assert_eq!(url.feature(), Some("dynamodb"));
/// # Ok::<(), bedrock_chat_store::StoreUrlError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// `memory`: an [`InMemoryHistoryStore`], lost when the process ends.
    Memory,
    /// `sqlite:PATH`, `sqlite://PATH` or `sqlite::memory:`: the URL as sqlx takes it.
    Sqlite {
        /// The whole URL, passed to `SqliteConfig::new`.
        url: String,
    },
    /// `postgres://…` or `postgresql://…`: the URL as sqlx takes it.
    Postgres {
        /// The whole URL, passed to `PostgresConfig::new`.
        url: String,
    },
    /// `redis://…` or `rediss://…` (TLS), with an optional `prefix` query parameter.
    Redis {
        /// The URL without the `prefix` parameter, passed to
        /// `RedisConfig::new`.
        url: String,
        /// Every key starts with this (`prefix=`); the store's default when absent.
        prefix: Option<String>,
    },
    /// `dynamodb://TABLE?endpoint=URL&region=REGION`.
    DynamoDb {
        /// The table (created on connect when missing).
        table: String,
        /// Where DynamoDB answers (`endpoint=`, e.g. a local server); the AWS default when
        /// absent.
        endpoint: Option<String>,
        /// The AWS region (`region=`); from the environment when absent.
        region: Option<String>,
    },
}

/// Credentials may sit in a URL: print only the backend and what is not secret.
impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::Sqlite { url } => f.debug_struct("Sqlite").field("url", url).finish(),
            Self::Postgres { .. } => f.debug_struct("Postgres").finish_non_exhaustive(),
            Self::Redis { prefix, .. } => f
                .debug_struct("Redis")
                .field("prefix", prefix)
                .finish_non_exhaustive(),
            Self::DynamoDb {
                table,
                endpoint,
                region,
            } => f
                .debug_struct("DynamoDb")
                .field("table", table)
                .field("endpoint", endpoint)
                .field("region", region)
                .finish(),
        }
    }
}

/// Why [`from_url`] or [`StoreUrl`] refused a URL, or could not connect to what it named.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreUrlError {
    /// The URL names no store backend.
    #[error("unknown store URL scheme `{scheme}`: expected {EXPECTED}")]
    UnknownScheme {
        /// The scheme as given.
        scheme: String,
    },
    /// One part of the URL is malformed.
    #[error("bad {part} in the store URL: {reason}")]
    Invalid {
        /// Which part.
        part: UrlPart,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend exists but this build of `bedrock-chat-store` leaves it out.
    #[error(
        "`{backend}` store URLs need the `{feature}` feature of bedrock-chat-store, which this \
         build does not enable"
    )]
    FeatureDisabled {
        /// The backend the URL names.
        backend: &'static str,
        /// The Cargo feature that compiles it in.
        feature: &'static str,
    },
    /// The URL is well formed but connecting (or migrating, or creating the table)
    /// failed. The message includes the causes, so a host can print it as it is.
    #[error(
        "could not connect the {backend} history store: {}",
        error_chain(error)
    )]
    Connect {
        /// The backend the URL names.
        backend: &'static str,
        /// The store's error.
        error: StoreError,
    },
}

impl StoreUrlError {
    /// Whether trying again later may succeed (the backend did not answer).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Connect { error, .. } if error.is_retryable())
    }
}

impl From<InvalidUrl> for StoreUrlError {
    fn from(error: InvalidUrl) -> Self {
        Self::Invalid {
            part: error.part,
            reason: error.reason,
        }
    }
}

impl StoreUrl {
    /// Parses `url` (see the [table](crate::url)). Only the syntax is checked, whatever
    /// features are on; [`connect`](Self::connect) checks the feature.
    ///
    /// # Errors
    /// [`StoreUrlError::UnknownScheme`] for a scheme that names no backend;
    /// [`StoreUrlError::Invalid`] naming the malformed part.
    pub fn parse(url: &str) -> Result<Self, StoreUrlError> {
        let (scheme, rest) = parts::split_scheme(url)?;
        match scheme.as_str() {
            "memory" => {
                parts::check_memory(rest)?;
                Ok(Self::Memory)
            }
            "sqlite" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                let path = path.split_once('?').map_or(path, |(path, _)| path);
                if path.is_empty() {
                    return Err(InvalidUrl::new(
                        UrlPart::Path,
                        "give a file (`sqlite:chats.db`) or `sqlite::memory:`",
                    )
                    .into());
                }
                Ok(Self::Sqlite {
                    url: format!("sqlite:{rest}"),
                })
            }
            "postgres" | "postgresql" => {
                if parts::server_authority(rest)?.is_empty() {
                    return Err(InvalidUrl::new(
                        UrlPart::Host,
                        "give the server: postgres://USER@HOST/DATABASE",
                    )
                    .into());
                }
                Ok(Self::Postgres {
                    url: format!("{scheme}:{rest}"),
                })
            }
            "redis" | "rediss" => {
                let redis = parts::parse_redis(&scheme, rest)?;
                Ok(Self::Redis {
                    url: redis.url,
                    prefix: redis.prefix,
                })
            }
            "dynamodb" => {
                let dynamodb = parts::parse_dynamodb(rest)?;
                Ok(Self::DynamoDb {
                    table: dynamodb.table,
                    endpoint: dynamodb.endpoint,
                    region: dynamodb.region,
                })
            }
            _ => Err(StoreUrlError::UnknownScheme { scheme }),
        }
    }

    /// The backend's name, as [`HistoryStore::backend`] reports it.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
            Self::Redis { .. } => "redis",
            Self::DynamoDb { .. } => "dynamodb",
        }
    }

    /// The Cargo feature of `bedrock-chat-store` the backend needs; `None` for `memory`.
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            Self::Memory => None,
            other => Some(other.backend()),
        }
    }

    /// Whether this build includes the backend.
    pub fn is_enabled(&self) -> bool {
        match self {
            Self::Memory => true,
            Self::Sqlite { .. } => cfg!(feature = "sqlite"),
            Self::Postgres { .. } => cfg!(feature = "postgres"),
            Self::Redis { .. } => cfg!(feature = "redis"),
            Self::DynamoDb { .. } => cfg!(feature = "dynamodb"),
        }
    }

    /// Connects the store the URL names, with the backend's default settings: applies
    /// the SQL migrations, creates a missing DynamoDB table.
    ///
    /// # Errors
    /// [`StoreUrlError::FeatureDisabled`] when this build lacks the backend (before any
    /// I/O); [`StoreUrlError::Connect`] when the backend refuses or does not answer.
    pub async fn connect(&self) -> Result<Arc<dyn HistoryStore>, StoreUrlError> {
        if !self.is_enabled() {
            return Err(StoreUrlError::FeatureDisabled {
                backend: self.backend(),
                feature: self.backend(),
            });
        }
        let backend = self.backend();
        self.connect_enabled()
            .await
            .map_err(|error| StoreUrlError::Connect { backend, error })
    }

    async fn connect_enabled(&self) -> Result<Arc<dyn HistoryStore>, StoreError> {
        match self {
            Self::Memory => Ok(Arc::new(InMemoryHistoryStore::new())),
            #[cfg(feature = "sqlite")]
            Self::Sqlite { url } => Ok(Arc::new(crate::SqliteHistoryStore::open(url).await?)),
            #[cfg(feature = "postgres")]
            Self::Postgres { url } => Ok(Arc::new(crate::PostgresHistoryStore::open(url).await?)),
            #[cfg(feature = "redis")]
            Self::Redis { url, prefix } => {
                let mut config = crate::RedisConfig::new(url.as_str());
                if let Some(prefix) = prefix {
                    config = config.with_prefix(prefix.as_str());
                }
                Ok(Arc::new(crate::RedisHistoryStore::connect(config).await?))
            }
            #[cfg(feature = "dynamodb")]
            Self::DynamoDb {
                table,
                endpoint,
                region,
            } => dynamodb::connect(table, endpoint.as_deref(), region.as_deref()).await,
            // Refused by `connect` before this is called.
            #[allow(unreachable_patterns)]
            other => Err(StoreError::Unavailable {
                backend: other.backend(),
                source: "this build does not include the backend".into(),
            }),
        }
    }
}

impl FromStr for StoreUrl {
    type Err = StoreUrlError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Self::parse(url)
    }
}

/// The history store `url` names, connected and ready: see the [table](crate::url) of
/// forms.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bedrock_chat_store::StoreUrlError> {
/// let store = bedrock_chat_store::from_url("postgres://chat@localhost/chat").await?;
/// assert_eq!(store.backend(), "postgres");
/// # Ok(()) }
/// ```
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bedrock_chat_store::StoreUrlError> {
/// let store = bedrock_chat_store::from_url("memory").await?;
/// store.ping().await.expect("memory answers");
/// let bad = bedrock_chat_store::from_url("dynamodb://chats?regoin=eu-west-1").await;
/// assert_eq!(
///     bad.err().map(|e| e.to_string()).as_deref(),
///     Some("bad query parameter `regoin` in the store URL: unknown parameter; expected endpoint or region")
/// );
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`StoreUrl::parse`] and [`StoreUrl::connect`].
pub async fn from_url(url: &str) -> Result<Arc<dyn HistoryStore>, StoreUrlError> {
    StoreUrl::parse(url)?.connect().await
}

#[cfg(feature = "dynamodb")]
mod dynamodb {
    use std::sync::Arc;

    use bedrock_chat_core::backend::dynamodb::{client, ensure_table};
    use bedrock_chat_core::{HistoryStore, StoreError};

    use crate::{DynamoDbConfig, DynamoDbHistoryStore};

    /// A store over `table`, created when missing.
    pub(super) async fn connect(
        table: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
    ) -> Result<Arc<dyn HistoryStore>, StoreError> {
        let client = client(endpoint, region).await;
        ensure_table(&client, table, || {
            DynamoDbHistoryStore::create_table(&client, table)
        })
        .await?;
        Ok(Arc::new(DynamoDbHistoryStore::new(
            client,
            DynamoDbConfig::new(table),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(url: &str) -> (UrlPart, String) {
        match StoreUrl::parse(url) {
            Err(StoreUrlError::Invalid { part, reason }) => (part, reason),
            other => panic!("{url}: expected Invalid, got {other:?}"),
        }
    }

    fn dynamodb(table: &str, endpoint: Option<&str>, region: Option<&str>) -> StoreUrl {
        StoreUrl::DynamoDb {
            table: table.into(),
            endpoint: endpoint.map(Into::into),
            region: region.map(Into::into),
        }
    }

    #[test]
    fn memory_parses() {
        assert_eq!(StoreUrl::parse("memory").unwrap(), StoreUrl::Memory);
        assert_eq!(StoreUrl::parse(" MEMORY ").unwrap(), StoreUrl::Memory);
        assert_eq!(StoreUrl::parse("memory://").unwrap(), StoreUrl::Memory);
        assert_eq!(StoreUrl::Memory.feature(), None);
        assert!(StoreUrl::Memory.is_enabled());
    }

    #[test]
    fn memory_with_a_path_is_refused() {
        assert_eq!(invalid("memory:foo").0, UrlPart::Path);
    }

    #[test]
    fn sqlite_forms_parse_to_sqlx_urls() {
        for (given, url) in [
            ("sqlite:chats.db", "sqlite:chats.db"),
            ("sqlite://chats.db", "sqlite://chats.db"),
            (
                "sqlite:///var/lib/chat/chats.db",
                "sqlite:///var/lib/chat/chats.db",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
            ("SQLite:chats.db?mode=rwc", "sqlite:chats.db?mode=rwc"),
        ] {
            assert_eq!(
                StoreUrl::parse(given).unwrap(),
                StoreUrl::Sqlite { url: url.into() },
                "{given}"
            );
        }
    }

    #[test]
    fn sqlite_without_a_path_is_refused() {
        for url in ["sqlite", "sqlite:", "sqlite://", "sqlite:?mode=ro"] {
            assert_eq!(invalid(url).0, UrlPart::Path, "{url}");
        }
    }

    #[test]
    fn postgres_forms_parse() {
        for url in [
            "postgres://chat@localhost/chat",
            "postgresql://chat:secret@db.internal:5432/chat?sslmode=require",
        ] {
            assert_eq!(
                StoreUrl::parse(url).unwrap(),
                StoreUrl::Postgres { url: url.into() }
            );
        }
        assert_eq!(
            StoreUrl::parse("postgres://h/db").unwrap().feature(),
            Some("postgres")
        );
    }

    #[test]
    fn postgres_without_a_host_or_slashes_is_refused() {
        assert_eq!(invalid("postgres://").0, UrlPart::Host);
        assert_eq!(invalid("postgresql:///chat").0, UrlPart::Host);
        assert_eq!(invalid("postgres:localhost").0, UrlPart::Scheme);
    }

    #[test]
    fn redis_forms_parse_and_the_prefix_is_taken_out() {
        assert_eq!(
            StoreUrl::parse("redis://127.0.0.1:6379/0").unwrap(),
            StoreUrl::Redis {
                url: "redis://127.0.0.1:6379/0".into(),
                prefix: None,
            }
        );
        assert_eq!(
            StoreUrl::parse("rediss://:pw@cache:6380/?prefix=chat%3Aprod&protocol=resp3").unwrap(),
            StoreUrl::Redis {
                url: "rediss://:pw@cache:6380/?protocol=resp3".into(),
                prefix: Some("chat:prod".into()),
            }
        );
        assert_eq!(
            StoreUrl::parse("redis://cache/?insecure").unwrap(),
            StoreUrl::Redis {
                url: "redis://cache/?insecure".into(),
                prefix: None,
            }
        );
    }

    #[test]
    fn redis_errors_name_the_part() {
        assert_eq!(invalid("redis://").0, UrlPart::Host);
        assert_eq!(invalid("redis:cache").0, UrlPart::Scheme);
        assert_eq!(
            invalid("redis://cache/?prefix=").0,
            UrlPart::Parameter("prefix".into())
        );
        assert_eq!(
            invalid("redis://cache/?prefix=a&prefix=b"),
            (
                UrlPart::Parameter("prefix".into()),
                "given more than once".into()
            )
        );
        assert_eq!(
            invalid("redis://cache/?prefix=%zz").0,
            UrlPart::Parameter("prefix".into())
        );
    }

    #[test]
    fn dynamodb_forms_parse() {
        assert_eq!(
            StoreUrl::parse("dynamodb://chat-history").unwrap(),
            dynamodb("chat-history", None, None)
        );
        assert_eq!(
            StoreUrl::parse("dynamodb://chat.history_1?region=eu-west-1").unwrap(),
            dynamodb("chat.history_1", None, Some("eu-west-1"))
        );
        assert_eq!(
            StoreUrl::parse("dynamodb://chats?endpoint=http://127.0.0.1:8000&region=us-east-1")
                .unwrap(),
            dynamodb("chats", Some("http://127.0.0.1:8000"), Some("us-east-1"))
        );
        assert_eq!(
            StoreUrl::parse("dynamodb://chats?endpoint=https%3A%2F%2Fddb.example").unwrap(),
            dynamodb("chats", Some("https://ddb.example"), None)
        );
    }

    #[test]
    fn dynamodb_table_errors_name_the_table() {
        for url in [
            "dynamodb://",
            "dynamodb://?region=eu-west-1",
            "dynamodb://ab",
            "dynamodb://chat/history",
            "dynamodb://chat history",
        ] {
            assert_eq!(invalid(url).0, UrlPart::Table, "{url}");
        }
        let long = format!("dynamodb://{}", "t".repeat(256));
        assert_eq!(invalid(&long).0, UrlPart::Table);
        assert_eq!(invalid("dynamodb:chats").0, UrlPart::Scheme);
    }

    #[test]
    fn dynamodb_parameter_errors_name_the_parameter() {
        let endpoint = UrlPart::Parameter("endpoint".into());
        let region = UrlPart::Parameter("region".into());
        assert_eq!(
            invalid("dynamodb://chats?endpoint=localhost:8000").0,
            endpoint
        );
        assert_eq!(invalid("dynamodb://chats?endpoint=http://").0, endpoint);
        assert_eq!(
            invalid("dynamodb://chats?endpoint=http://a&endpoint=http://b").0,
            endpoint
        );
        assert_eq!(invalid("dynamodb://chats?region=").0, region);
        assert_eq!(invalid("dynamodb://chats?region=EU West").0, region);
        let (part, reason) = invalid("dynamodb://chats?regoin=eu-west-1");
        assert_eq!(part, UrlPart::Parameter("regoin".into()));
        assert!(reason.contains("expected endpoint or region"));
    }

    #[test]
    fn unknown_and_missing_schemes_are_refused() {
        for (url, scheme) in [
            ("mysql://localhost/chat", "mysql"),
            ("chats.db", "chats.db"),
            ("http://localhost", "http"),
        ] {
            match StoreUrl::parse(url) {
                Err(StoreUrlError::UnknownScheme { scheme: s }) => assert_eq!(s, scheme),
                other => panic!("{url}: {other:?}"),
            }
        }
        assert_eq!(invalid("").0, UrlPart::Scheme);
        assert_eq!(invalid("   ").0, UrlPart::Scheme);
    }

    #[test]
    fn error_messages_name_the_part_and_the_expected_forms() {
        let unknown = StoreUrl::parse("mysql://x").unwrap_err().to_string();
        assert!(unknown.contains("`mysql`") && unknown.contains("dynamodb://TABLE"));
        let table = StoreUrl::parse("dynamodb://a").unwrap_err().to_string();
        assert_eq!(
            table,
            "bad table name in the store URL: `a` must be 3 to 255 characters long"
        );
    }

    #[test]
    fn debug_hides_server_credentials() {
        let url = StoreUrl::parse("postgres://chat:hunter2@db/chat").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
        let url = StoreUrl::parse("redis://:hunter2@cache/").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn memory_connects() {
        let store = from_url("memory").await.unwrap();
        assert_eq!(store.backend(), "memory");
        store.ping().await.unwrap();
    }

    #[cfg(not(feature = "sqlite"))]
    #[tokio::test]
    async fn sqlite_without_its_feature_names_the_feature() {
        let err = from_url("sqlite::memory:").await.err().unwrap();
        assert!(matches!(
            err,
            StoreUrlError::FeatureDisabled {
                feature: "sqlite",
                ..
            }
        ));
        assert!(err.to_string().contains("`sqlite` feature"));
    }

    #[cfg(not(feature = "postgres"))]
    #[tokio::test]
    async fn postgres_without_its_feature_names_the_feature() {
        let err = from_url("postgres://nowhere/chat").await.err().unwrap();
        assert!(matches!(
            err,
            StoreUrlError::FeatureDisabled {
                feature: "postgres",
                ..
            }
        ));
    }

    #[cfg(not(feature = "redis"))]
    #[tokio::test]
    async fn redis_without_its_feature_names_the_feature() {
        let err = from_url("redis://nowhere/").await.err().unwrap();
        assert!(matches!(
            err,
            StoreUrlError::FeatureDisabled {
                feature: "redis",
                ..
            }
        ));
    }

    #[cfg(not(feature = "dynamodb"))]
    #[tokio::test]
    async fn dynamodb_without_its_feature_names_the_feature() {
        let err = from_url("dynamodb://chats").await.err().unwrap();
        assert!(matches!(
            err,
            StoreUrlError::FeatureDisabled {
                feature: "dynamodb",
                ..
            }
        ));
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_in_memory_connects() {
        let store = from_url("sqlite::memory:").await.unwrap();
        assert_eq!(store.backend(), "sqlite");
        store.ping().await.unwrap();
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn a_postgres_url_sqlx_refuses_is_a_connect_error() {
        // Valid to our parser, not to sqlx: a port that is not a number.
        let err = from_url("postgres://localhost:notaport/chat")
            .await
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                StoreUrlError::Connect {
                    backend: "postgres",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("url"), "{err}");
    }
}
