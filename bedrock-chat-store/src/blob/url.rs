//! A blob store from a URL: [`blob_from_url`] and [`BlobUrl`], as [`from_url`](crate::from_url)
//! and [`StoreUrl`](crate::StoreUrl) are for history stores, so every host accepts the
//! same `--blobs` values and reports a bad one the same way.
//!
//! | URL | backend | feature |
//! |---|---|---|
//! | `memory` | [`InMemoryBlobStore`] | always |
//! | `file:PATH`, `file://PATH` (`file:///var/lib/chat/blobs`) | [`FilesystemBlobStore`] | always |
//! | `s3://BUCKET/PREFIX?endpoint=URL&region=REGION` (prefix and both parameters optional) | `S3BlobStore` | `s3` |
//!
//! Parsing ([`BlobUrl::parse`]) checks the syntax whatever features are on; connecting
//! refuses a backend whose feature this build lacks with
//! [`BlobUrlError::FeatureDisabled`], before any I/O. Connecting a `file:` store creates
//! its directory; an S3 bucket must exist (it is not checked until the first request).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use bedrock_chat_core::backend::error_chain;
use bedrock_chat_core::backend::url::{self as parts, InvalidUrl, UrlPart};
use bedrock_chat_core::{BlobStore, StoreError};

use super::key::is_segment;
use super::{FilesystemBlobStore, InMemoryBlobStore};

/// The URL forms [`BlobUrl::parse`] accepts, for error messages.
const EXPECTED: &str = "memory, file:PATH or s3://BUCKET/PREFIX";

/// A parsed blob store URL: which backend, and what it needs to connect.
///
/// ```
/// use bedrock_chat_store::BlobUrl;
///
/// let url: BlobUrl = "s3://chat-attachments/prod?region=eu-west-1".parse()?;
/// assert_eq!(
///     url,
///     BlobUrl::S3 {
///         bucket: "chat-attachments".into(),
///         prefix: Some("prod".into()),
///         endpoint: None,
///         region: Some("eu-west-1".into()),
///     }
/// );
/// assert_eq!(url.backend(), "s3");
/// assert_eq!(url.feature(), Some("s3"));
/// assert_eq!("file:///var/lib/chat/blobs".parse::<BlobUrl>()?.backend(), "filesystem");
/// # Ok::<(), bedrock_chat_store::BlobUrlError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobUrl {
    /// `memory`: an [`InMemoryBlobStore`], lost when the process ends.
    Memory,
    /// `file:PATH` or `file://PATH`: a [`FilesystemBlobStore`] rooted at `PATH`.
    File {
        /// The root directory (created on connect when missing).
        path: PathBuf,
    },
    /// `s3://BUCKET/PREFIX?endpoint=URL&region=REGION`.
    S3 {
        /// The bucket, which must exist.
        bucket: String,
        /// Every object key starts with this and a `/` (the URL's path); none when absent.
        prefix: Option<String>,
        /// Where S3 answers (`endpoint=`, e.g. a local server; path-style addressing is
        /// then used); the AWS default when absent.
        endpoint: Option<String>,
        /// The AWS region (`region=`); from the environment when absent.
        region: Option<String>,
    },
}

/// Why [`blob_from_url`] or [`BlobUrl`] refused a URL, or could not open what it named.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobUrlError {
    /// The URL names no blob store backend.
    #[error("unknown blob store URL scheme `{scheme}`: expected {EXPECTED}")]
    UnknownScheme {
        /// The scheme as given.
        scheme: String,
    },
    /// One part of the URL is malformed. An S3 URL's bucket is its [`UrlPart::Host`], its
    /// key prefix its [`UrlPart::Path`].
    #[error("bad {part} in the blob store URL: {reason}")]
    Invalid {
        /// Which part.
        part: UrlPart,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend exists but this build of `bedrock-chat-store` leaves it out.
    #[error(
        "`{backend}` blob store URLs need the `{feature}` feature of bedrock-chat-store, which \
         this build does not enable"
    )]
    FeatureDisabled {
        /// The backend the URL names.
        backend: &'static str,
        /// The Cargo feature that compiles it in.
        feature: &'static str,
    },
    /// The URL is well formed but opening the store failed (a directory that cannot be
    /// created). The message includes the causes, so a host can print it as it is.
    #[error("could not open the {backend} blob store: {}", error_chain(error))]
    Connect {
        /// The backend the URL names.
        backend: &'static str,
        /// The store's error.
        error: StoreError,
    },
}

impl BlobUrlError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Connect { error, .. } if error.is_retryable())
    }
}

impl From<InvalidUrl> for BlobUrlError {
    fn from(error: InvalidUrl) -> Self {
        Self::Invalid {
            part: error.part,
            reason: error.reason,
        }
    }
}

impl BlobUrl {
    /// Parses `url` (see the [table](crate::blob::url)). Only the syntax is checked,
    /// whatever features are on; [`connect`](Self::connect) checks the feature.
    ///
    /// # Errors
    /// [`BlobUrlError::UnknownScheme`] for a scheme that names no backend;
    /// [`BlobUrlError::Invalid`] naming the malformed part.
    pub fn parse(url: &str) -> Result<Self, BlobUrlError> {
        let (scheme, rest) = parts::split_scheme(url)?;
        match scheme.as_str() {
            "memory" => {
                parts::check_memory(rest)?;
                Ok(Self::Memory)
            }
            "file" => parse_file(rest),
            "s3" => parse_s3(rest),
            _ => Err(BlobUrlError::UnknownScheme { scheme }),
        }
    }

    /// The backend's name, as [`BlobStore::backend`] reports it.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::File { .. } => "filesystem",
            Self::S3 { .. } => "s3",
        }
    }

    /// The Cargo feature of `bedrock-chat-store` the backend needs; `None` when it is
    /// always built.
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            Self::Memory | Self::File { .. } => None,
            Self::S3 { .. } => Some("s3"),
        }
    }

    /// Whether this build includes the backend.
    pub fn is_enabled(&self) -> bool {
        match self {
            Self::Memory | Self::File { .. } => true,
            Self::S3 { .. } => cfg!(feature = "s3"),
        }
    }

    /// Opens the blob store the URL names: creates a `file:` store's directory, builds
    /// an S3 client from the AWS defaults and the URL's endpoint and region.
    ///
    /// # Errors
    /// [`BlobUrlError::FeatureDisabled`] when this build lacks the backend (before any
    /// I/O); [`BlobUrlError::Connect`] when the store cannot be opened.
    pub async fn connect(&self) -> Result<Arc<dyn BlobStore>, BlobUrlError> {
        let backend = self.backend();
        match (self.feature(), self.is_enabled()) {
            (Some(feature), false) => Err(BlobUrlError::FeatureDisabled { backend, feature }),
            _ => self
                .connect_enabled()
                .await
                .map_err(|error| BlobUrlError::Connect { backend, error }),
        }
    }

    async fn connect_enabled(&self) -> Result<Arc<dyn BlobStore>, StoreError> {
        match self {
            Self::Memory => Ok(Arc::new(InMemoryBlobStore::new())),
            Self::File { path } => Ok(Arc::new(FilesystemBlobStore::open(path.clone()).await?)),
            #[cfg(feature = "s3")]
            Self::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                let client = super::s3::client(endpoint.as_deref(), region.as_deref()).await;
                let mut config = super::S3Config::new(bucket.as_str());
                if let Some(prefix) = prefix {
                    config = config.with_prefix(prefix.as_str());
                }
                Ok(Arc::new(super::S3BlobStore::new(client, config)))
            }
            // Refused by `connect` before this is called.
            #[allow(unreachable_patterns)]
            other => Err(StoreError::Unavailable {
                backend: other.backend(),
                source: "this build does not include the backend".into(),
            }),
        }
    }
}

impl FromStr for BlobUrl {
    type Err = BlobUrlError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Self::parse(url)
    }
}

impl fmt::Display for BlobUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::File { path } => write!(f, "file:{}", path.display()),
            Self::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                write!(f, "s3://{bucket}/{}", prefix.as_deref().unwrap_or_default())?;
                let mut separator = '?';
                for (name, value) in [("endpoint", endpoint), ("region", region)] {
                    if let Some(value) = value {
                        write!(f, "{separator}{name}={value}")?;
                        separator = '&';
                    }
                }
                Ok(())
            }
        }
    }
}

/// The blob store `url` names, opened and ready: see the [table](crate::blob::url) of
/// forms.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bedrock_chat_store::BlobUrlError> {
/// let blobs = bedrock_chat_store::blob_from_url("memory").await?;
/// assert_eq!(blobs.backend(), "memory");
/// let bad = bedrock_chat_store::blob_from_url("s3://Chat_Blobs").await;
/// assert_eq!(
///     bad.err().map(|e| e.to_string()).as_deref(),
///     Some("bad host in the blob store URL: bucket name `Chat_Blobs` may hold only \
///           lower-case letters, digits, `.` and `-`")
/// );
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`BlobUrl::parse`] and [`BlobUrl::connect`].
pub async fn blob_from_url(url: &str) -> Result<Arc<dyn BlobStore>, BlobUrlError> {
    BlobUrl::parse(url)?.connect().await
}

/// What follows `file:`: `PATH` or `//PATH`, no query.
fn parse_file(rest: &str) -> Result<BlobUrl, BlobUrlError> {
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.contains('?') {
        return Err(InvalidUrl::new(UrlPart::Query, "file URLs take no parameters").into());
    }
    if path.is_empty() {
        return Err(InvalidUrl::new(
            UrlPart::Path,
            "give a directory: file:blobs or file:///var/lib/chat/blobs",
        )
        .into());
    }
    Ok(BlobUrl::File {
        path: PathBuf::from(path),
    })
}

/// What follows `s3:`: `//BUCKET/PREFIX?endpoint=URL&region=REGION`.
fn parse_s3(rest: &str) -> Result<BlobUrl, BlobUrlError> {
    let Some(after) = rest.strip_prefix("//") else {
        return Err(InvalidUrl::new(UrlPart::Scheme, "write s3://BUCKET/PREFIX").into());
    };
    let (location, query) = after.split_once('?').unwrap_or((after, ""));
    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    check_bucket(bucket)?;
    // One trailing `/` is allowed (`s3://bucket/prod/`); the store adds it anyway.
    let given = prefix;
    let prefix = given.strip_suffix('/').unwrap_or(given);
    if !given.is_empty() {
        if let Some(bad) = prefix.split('/').find(|segment| !is_segment(segment)) {
            return Err(InvalidUrl::new(
                UrlPart::Path,
                format!(
                    "the key prefix `{given}` has a bad segment `{bad}`: segments are \
                     non-empty, not `.` or `..`, of A-Z a-z 0-9 . _ -"
                ),
            )
            .into());
        }
    }
    let (endpoint, region) = aws_parameters(query)?;
    Ok(BlobUrl::S3 {
        bucket: bucket.to_owned(),
        prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
        endpoint,
        region,
    })
}

/// S3's bucket naming rule: 3 to 63 of lower-case letters, digits, `.` and `-`,
/// beginning and ending with a letter or digit.
fn check_bucket(bucket: &str) -> Result<(), InvalidUrl> {
    let invalid = |reason: String| InvalidUrl::new(UrlPart::Host, reason);
    if bucket.is_empty() {
        return Err(invalid("the bucket is missing: write s3://BUCKET".into()));
    }
    if !(3..=63).contains(&bucket.len()) {
        return Err(invalid(format!(
            "bucket name `{bucket}` must be 3 to 63 characters long"
        )));
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err(invalid(format!(
            "bucket name `{bucket}` may hold only lower-case letters, digits, `.` and `-`"
        )));
    }
    let alphanumeric = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !alphanumeric(bucket.bytes().next()) || !alphanumeric(bucket.bytes().last()) {
        return Err(invalid(format!(
            "bucket name `{bucket}` must begin and end with a letter or digit"
        )));
    }
    Ok(())
}

/// The `endpoint` and `region` parameters, checked as a DynamoDB URL's are.
fn aws_parameters(query: &str) -> Result<(Option<String>, Option<String>), InvalidUrl> {
    let (mut endpoint, mut region) = (None, None);
    for (name, raw) in parts::query_pairs(query) {
        let bad = |reason: String| InvalidUrl::new(UrlPart::Parameter(name.into()), reason);
        match name {
            "endpoint" => {
                let value = parts::query_parameter(&endpoint, name, raw)?;
                let host = value
                    .strip_prefix("http://")
                    .or_else(|| value.strip_prefix("https://"))
                    .ok_or_else(|| bad(format!("`{value}` is not an http:// or https:// URL")))?;
                if host.split(['/', '?']).next().unwrap_or_default().is_empty() {
                    return Err(bad(format!("`{value}` has no host")));
                }
                endpoint = Some(value);
            }
            "region" => {
                let value = parts::query_parameter(&region, name, raw)?;
                let valid = !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !valid {
                    return Err(bad(format!(
                        "`{value}` is not an AWS region (like eu-west-1)"
                    )));
                }
                region = Some(value);
            }
            _ => return Err(bad("unknown parameter; expected endpoint or region".into())),
        }
    }
    Ok((endpoint, region))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(url: &str) -> (UrlPart, String) {
        match BlobUrl::parse(url) {
            Err(BlobUrlError::Invalid { part, reason }) => (part, reason),
            other => panic!("{url}: expected Invalid, got {other:?}"),
        }
    }

    fn s3(
        bucket: &str,
        prefix: Option<&str>,
        endpoint: Option<&str>,
        region: Option<&str>,
    ) -> BlobUrl {
        BlobUrl::S3 {
            bucket: bucket.into(),
            prefix: prefix.map(Into::into),
            endpoint: endpoint.map(Into::into),
            region: region.map(Into::into),
        }
    }

    #[test]
    fn memory_parses() {
        assert_eq!(BlobUrl::parse("memory").unwrap(), BlobUrl::Memory);
        assert_eq!(BlobUrl::parse(" Memory ").unwrap(), BlobUrl::Memory);
        assert_eq!(BlobUrl::parse("memory://").unwrap(), BlobUrl::Memory);
        assert_eq!(invalid("memory:x").0, UrlPart::Path);
        assert!(BlobUrl::Memory.is_enabled());
        assert_eq!(BlobUrl::Memory.feature(), None);
    }

    #[test]
    fn file_forms_parse_to_a_directory() {
        for (given, path) in [
            ("file:blobs", "blobs"),
            ("file://blobs", "blobs"),
            ("file:///var/lib/chat/blobs", "/var/lib/chat/blobs"),
            ("FILE:/tmp/x y", "/tmp/x y"),
        ] {
            assert_eq!(
                BlobUrl::parse(given).unwrap(),
                BlobUrl::File { path: path.into() },
                "{given}"
            );
        }
        let url = BlobUrl::parse("file:blobs").unwrap();
        assert_eq!((url.backend(), url.feature()), ("filesystem", None));
    }

    #[test]
    fn file_without_a_path_or_with_a_query_is_refused() {
        for url in ["file", "file:", "file://"] {
            assert_eq!(invalid(url).0, UrlPart::Path, "{url}");
        }
        assert_eq!(invalid("file:blobs?mode=ro").0, UrlPart::Query);
    }

    #[test]
    fn s3_forms_parse() {
        assert_eq!(
            BlobUrl::parse("s3://chat-blobs").unwrap(),
            s3("chat-blobs", None, None, None)
        );
        assert_eq!(
            BlobUrl::parse("s3://chat-blobs/").unwrap(),
            s3("chat-blobs", None, None, None)
        );
        assert_eq!(
            BlobUrl::parse("s3://chat.blobs-1/prod/attachments/?region=eu-west-1").unwrap(),
            s3(
                "chat.blobs-1",
                Some("prod/attachments"),
                None,
                Some("eu-west-1")
            )
        );
        assert_eq!(
            BlobUrl::parse("S3://blobs?endpoint=http://127.0.0.1:5000&region=us-east-1").unwrap(),
            s3(
                "blobs",
                None,
                Some("http://127.0.0.1:5000"),
                Some("us-east-1")
            )
        );
        assert_eq!(
            BlobUrl::parse("s3://blobs/p?endpoint=https%3A%2F%2Fs3.example").unwrap(),
            s3("blobs", Some("p"), Some("https://s3.example"), None)
        );
    }

    #[test]
    fn s3_bucket_errors_name_the_host() {
        for url in [
            "s3://",
            "s3:///prefix",
            "s3://ab",
            "s3://Chat",
            "s3://chat_blobs",
            "s3://-chat",
            "s3://chat-",
            "s3://?region=eu-west-1",
        ] {
            assert_eq!(invalid(url).0, UrlPart::Host, "{url}");
        }
        assert_eq!(
            invalid(&format!("s3://{}", "b".repeat(64))).0,
            UrlPart::Host
        );
        assert!(BlobUrl::parse(&format!("s3://{}", "b".repeat(63))).is_ok());
        assert_eq!(invalid("s3:bucket").0, UrlPart::Scheme);
    }

    #[test]
    fn s3_prefix_errors_name_the_path() {
        for url in [
            "s3://blobs/a//b",
            "s3://blobs/../x",
            "s3://blobs/a/./b",
            "s3://blobs/a b",
            "s3://blobs/a:b",
            "s3://blobs//",
        ] {
            assert_eq!(invalid(url).0, UrlPart::Path, "{url}");
        }
    }

    #[test]
    fn s3_parameter_errors_name_the_parameter() {
        let endpoint = UrlPart::Parameter("endpoint".into());
        assert_eq!(invalid("s3://blobs?endpoint=localhost:5000").0, endpoint);
        assert_eq!(invalid("s3://blobs?endpoint=http://").0, endpoint);
        assert_eq!(
            invalid("s3://blobs?endpoint=http://a&endpoint=http://b"),
            (endpoint, "given more than once".into())
        );
        assert_eq!(
            invalid("s3://blobs?region=EU").0,
            UrlPart::Parameter("region".into())
        );
        let (part, reason) = invalid("s3://blobs?prefix=x");
        assert_eq!(part, UrlPart::Parameter("prefix".into()));
        assert_eq!(reason, "unknown parameter; expected endpoint or region");
    }

    #[test]
    fn unknown_schemes_are_refused_naming_the_expected_forms() {
        for (url, scheme) in [
            ("gs://bucket", "gs"),
            ("blobs", "blobs"),
            ("http://x", "http"),
        ] {
            match BlobUrl::parse(url) {
                Err(BlobUrlError::UnknownScheme { scheme: s }) => assert_eq!(s, scheme),
                other => panic!("{url}: {other:?}"),
            }
        }
        let message = BlobUrl::parse("gs://b").unwrap_err().to_string();
        assert_eq!(
            message,
            "unknown blob store URL scheme `gs`: expected memory, file:PATH or s3://BUCKET/PREFIX"
        );
        assert_eq!(invalid("").0, UrlPart::Scheme);
    }

    #[test]
    fn urls_print_as_they_parse() {
        for url in [
            "memory",
            "file:/var/blobs",
            "s3://blobs/",
            "s3://blobs/prod/a?endpoint=http://127.0.0.1:5000&region=us-east-1",
            "s3://blobs/?region=us-east-1",
        ] {
            let parsed = BlobUrl::parse(url).unwrap();
            assert_eq!(parsed.to_string(), url);
            assert_eq!(BlobUrl::parse(&parsed.to_string()).unwrap(), parsed);
        }
    }

    #[tokio::test]
    async fn memory_and_file_connect() {
        let blobs = blob_from_url("memory").await.unwrap();
        assert_eq!(blobs.backend(), "memory");
        let root = std::env::temp_dir().join(format!(
            "bedrock-chat-blob-url-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let blobs = blob_from_url(&format!("file:{}", root.display()))
            .await
            .unwrap();
        assert_eq!(blobs.backend(), "filesystem");
        assert!(root.is_dir(), "connecting creates the directory");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn a_directory_that_cannot_be_made_is_a_connect_error() {
        let file = std::env::temp_dir().join(format!(
            "bedrock-chat-blob-url-file-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&file, b"a file").unwrap();
        let error = blob_from_url(&format!("file:{}/blobs", file.display()))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(
                error,
                BlobUrlError::Connect {
                    backend: "filesystem",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error
            .to_string()
            .starts_with("could not open the filesystem blob store: "));
        assert!(!error.is_retryable());
        std::fs::remove_file(&file).unwrap();
    }

    #[cfg(not(feature = "s3"))]
    #[tokio::test]
    async fn s3_without_its_feature_names_the_feature() {
        let error = blob_from_url("s3://blobs").await.err().unwrap();
        assert!(matches!(
            error,
            BlobUrlError::FeatureDisabled { feature: "s3", .. }
        ));
        assert!(error.to_string().contains("`s3` feature"));
    }

    #[cfg(feature = "s3")]
    #[tokio::test]
    async fn s3_connects_without_io() {
        // Nothing answers on port 9 of the loopback: connecting must not need it.
        let blobs = blob_from_url("s3://blobs/p?endpoint=http://127.0.0.1:9&region=us-east-1")
            .await
            .unwrap();
        assert_eq!(blobs.backend(), "s3");
    }
}
