#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod blob;
#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "redis",
    feature = "dynamodb"
))]
mod codec;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_error;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod url;

pub use blob::{blob_from_url, BlobUrl, BlobUrlError, FilesystemBlobStore, InMemoryBlobStore};
#[cfg(feature = "s3")]
pub use blob::{S3BlobStore, S3Config};
#[cfg(feature = "dynamodb")]
pub use dynamodb::{DynamoDbConfig, DynamoDbHistoryStore};
pub use memory::InMemoryHistoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresConfig, PostgresHistoryStore};
#[cfg(feature = "redis")]
pub use redis::{RedisConfig, RedisHistoryStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteConfig, SqliteHistoryStore};
pub use url::{from_url, StoreUrl, StoreUrlError, UrlPart};
