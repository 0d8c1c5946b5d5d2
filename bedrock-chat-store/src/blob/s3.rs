//! [`S3BlobStore`]: one object per blob in an Amazon S3 bucket (or a server speaking its
//! API, such as moto or MinIO), under an optional key prefix.
//!
//! Errors are classified as the DynamoDB backends classify theirs: no answer (dispatch
//! failure, timeout, a broken response), any 5xx, 429 or a throttling code (`SlowDown`,
//! ...) is [`StoreError::Unavailable`]; `NoSuchKey` on a read is [`StoreError::NotFound`]
//! of an [`Attachment`](Resource::Attachment); anything else (a missing bucket, access
//! denied) is [`StoreError::Backend`].

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use bedrock_chat_core::backend::BackendError;
use bedrock_chat_core::{BlobStore, Resource, StoreError};
use bytes::Bytes;

use super::key::{check_key, check_prefix};

const BACKEND: &str = "s3";

/// At most this many keys per `DeleteObjects` call: S3's limit.
const DELETE_BATCH: usize = 1000;

/// Settings of an [`S3BlobStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Config {
    /// The bucket, which must exist.
    pub bucket: String,
    /// Every object key starts with this (`chat/blobs/`), so the bucket can hold other
    /// things; empty for none.
    pub prefix: String,
}

impl S3Config {
    /// Objects in `bucket`, without a key prefix.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: String::new(),
        }
    }

    /// Every object key starts with `prefix`, to which a `/` is added when missing:
    /// `with_prefix("chat/blobs")` keeps blob `a/b` as object `chat/blobs/a/b`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        let mut prefix = prefix.into();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        self.prefix = prefix;
        self
    }
}

/// A [`BlobStore`] keeping each blob as one S3 object, for hosts that keep their history
/// in DynamoDB or PostgreSQL and run on more than one machine.
///
/// `delete_prefix` lists the objects under the prefix (`ListObjectsV2`, page by page) and
/// deletes each page with one `DeleteObjects` call (up to 1,000 keys).
///
/// ```no_run
/// use bedrock_chat_core::BlobStore;
/// use bedrock_chat_store::blob::s3::client;
/// use bedrock_chat_store::{S3BlobStore, S3Config};
/// use bytes::Bytes;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bedrock_chat_core::StoreError> {
/// // A local S3 (moto, MinIO): path-style addressing is forced with an endpoint.
/// let client = client(Some("http://127.0.0.1:5000"), Some("us-east-1")).await;
/// let blobs = S3BlobStore::new(client, S3Config::new("chat-attachments").with_prefix("prod"));
/// blobs.put("attachments/c1/m1/0", Bytes::from_static(b"%PDF-1.7")).await?;
/// assert_eq!(blobs.delete_prefix("attachments/c1/").await?, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct S3BlobStore {
    client: Client,
    config: S3Config,
}

/// An S3 client for `endpoint` (a local server, say) in `region`, each from the AWS
/// defaults (environment, profile) when `None`. With an endpoint, requests use path-style
/// addressing (`http://host/bucket/key`), as local servers need: they do not answer for
/// `bucket.host`.
pub async fn client(endpoint: Option<&str>, region: Option<&str>) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let shared = loader.load().await;
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(endpoint.is_some())
        .build();
    Client::from_conf(config)
}

impl S3BlobStore {
    /// A store over `config.bucket` through `client`. No I/O: the bucket is not checked.
    pub fn new(client: Client, config: S3Config) -> Self {
        Self { client, config }
    }

    /// The client, for what the store does not do (creating the bucket, say).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The settings.
    pub fn config(&self) -> &S3Config {
        &self.config
    }

    fn object_key(&self, key: &str) -> String {
        format!("{}{key}", self.config.prefix)
    }

    /// Deletes one page of objects (at most [`DELETE_BATCH`]); answers how many.
    async fn delete_batch(&self, keys: Vec<String>) -> Result<u64, StoreError> {
        let count = keys.len() as u64;
        let objects = keys
            .into_iter()
            .map(|key| ObjectIdentifier::builder().key(key).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(build_error)?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(build_error)?;
        let output = self
            .client
            .delete_objects()
            .bucket(&self.config.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(classify)?;
        // A 200 answer may still refuse some keys, one error each.
        if let Some(first) = output.errors().first() {
            let code = first.code().unwrap_or("unknown");
            let source = format!(
                "DeleteObjects refused {} of {count} keys; first {}: {code} {}",
                output.errors().len(),
                first.key().unwrap_or("?"),
                first.message().unwrap_or_default()
            );
            return Err(StoreError::classified(
                BACKEND,
                is_transient_code(code),
                source.into(),
            ));
        }
        Ok(count)
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        check_key(key)?;
        self.client
            .put_object()
            .bucket(&self.config.bucket)
            .key(self.object_key(key))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        check_key(key)?;
        let output = self
            .client
            .get_object()
            .bucket(&self.config.bucket)
            .key(self.object_key(key))
            .send()
            .await
            .map_err(|error| {
                if error.as_service_error().is_some_and(|e| e.is_no_such_key()) {
                    StoreError::not_found(Resource::Attachment)
                } else {
                    classify(error)
                }
            })?;
        // The connection broke while the body streamed: worth another try.
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| StoreError::unavailable(BACKEND, Box::new(e)))?;
        Ok(body.into_bytes())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        check_prefix(prefix)?;
        let prefix = self.object_key(prefix);
        let mut deleted = 0;
        let mut continuation: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.config.bucket)
                .prefix(&prefix)
                .max_keys(DELETE_BATCH as i32)
                .set_continuation_token(continuation.take())
                .send()
                .await
                .map_err(classify)?;
            let keys: Vec<String> = page
                .contents()
                .iter()
                .filter_map(|object| object.key().map(str::to_owned))
                .collect();
            for batch in keys.chunks(DELETE_BATCH) {
                deleted += self.delete_batch(batch.to_vec()).await?;
            }
            match page.next_continuation_token() {
                Some(token) if page.is_truncated() == Some(true) => {
                    continuation = Some(token.to_owned());
                }
                _ => return Ok(deleted),
            }
        }
    }
}

/// Whether an S3 error code means the same request may succeed later.
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "TooManyRequestsException"
            | "RequestTimeout"
            | "InternalError"
            | "ServiceUnavailable"
    )
}

/// Whether the same request may succeed later: no answer (dispatch failure, timeout, a
/// broken response), a 5xx or 429, or a [transient code](is_transient_code). A request
/// the SDK could not even build is not.
fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::ServiceError(e) => {
            let status = e.raw().status();
            status.is_server_error()
                || status.as_u16() == 429
                || e.err().code().is_some_and(is_transient_code)
        }
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    }
}

/// [`StoreError::Unavailable`] when the failure [is transient](is_transient), else
/// [`StoreError::Backend`].
fn classify<E>(error: SdkError<E, HttpResponse>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    StoreError::classified(BACKEND, is_transient(&error), Box::new(error))
}

/// A request the SDK would not build: a bug here, reported rather than panicked on.
fn build_error(error: BuildError) -> StoreError {
    StoreError::failed(BACKEND, Box::new(error))
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::types::error::NoSuchKey;
    use aws_smithy_runtime_api::client::result::ServiceError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(status).expect("status"),
            SdkBody::empty(),
        )
    }

    /// A `GetObject` answered with `status` and error `code`.
    fn answered(status: u16, code: &str) -> SdkError<GetObjectError, HttpResponse> {
        let error = GetObjectError::generic(ErrorMetadata::builder().code(code).build());
        SdkError::ServiceError(
            ServiceError::builder()
                .source(error)
                .raw(response(status))
                .build(),
        )
    }

    #[test]
    fn throttling_and_server_errors_are_unavailable() {
        for (status, code) in [
            (503, "SlowDown"),
            (500, "InternalError"),
            (400, "RequestTimeout"),
            (429, "Whatever"),
            (502, "Whatever"),
        ] {
            assert!(
                matches!(
                    classify(answered(status, code)),
                    StoreError::Unavailable { backend: "s3", .. }
                ),
                "{status} {code}"
            );
        }
    }

    #[test]
    fn refusals_are_backend_errors() {
        for (status, code) in [
            (404, "NoSuchBucket"),
            (403, "AccessDenied"),
            (400, "InvalidBucketName"),
        ] {
            assert!(
                matches!(
                    classify(answered(status, code)),
                    StoreError::Backend { backend: "s3", .. }
                ),
                "{status} {code}"
            );
        }
    }

    #[test]
    fn no_such_key_is_recognised() {
        let error: SdkError<GetObjectError, HttpResponse> = SdkError::service_error(
            GetObjectError::NoSuchKey(NoSuchKey::builder().build()),
            response(404),
        );
        assert!(error.as_service_error().is_some_and(|e| e.is_no_such_key()));
    }

    #[test]
    fn the_prefix_ends_with_a_slash() {
        assert_eq!(
            S3Config::new("b").with_prefix("chat/blobs").prefix,
            "chat/blobs/"
        );
        assert_eq!(S3Config::new("b").with_prefix("chat/").prefix, "chat/");
        assert_eq!(S3Config::new("b").with_prefix("").prefix, "");
    }
}
