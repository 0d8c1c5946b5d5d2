//! The rate limiter conformance suite on [`DynamoDbRateLimiter`] against the moto DynamoDB
//! server that `scripts/test` starts (two limiters = two SDK clients, as two app servers),
//! and the failure policies when DynamoDB cannot be reached.
#![cfg(feature = "dynamodb")]

use std::net::TcpListener;
use std::sync::Arc;

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::Client;
use bedrock_chat_core::conformance::limiter::{LayerUnderTest, LimiterPair};
use bedrock_chat_core::conformance::{service_url, unique_prefix};
use bedrock_chat_core::{ManualClock, Quota, RateLimitError, RateLimiter};
use bedrock_chat_ratelimit::{
    DynamoDbRateLimiter, FailurePolicy, FailurePolicyLimiter, LayeredRateLimiter, Layers,
};

async fn client(endpoint: &str) -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    Client::new(&config)
}

/// A table of its own for each case: names allow letters, digits, `_`, `-` and `.`.
fn table_name() -> String {
    unique_prefix().replace(':', "-")
}

async fn dynamodb(quota: Quota, clock: ManualClock) -> LimiterPair {
    dynamodb_pair(quota.into(), clock).await
}

/// Two limiters enforcing `layers` over one new table, through two SDK clients.
async fn dynamodb_pair(layers: Layers, clock: ManualClock) -> LimiterPair {
    let endpoint = service_url("BEDROCK_CHAT_TEST_DYNAMODB_ENDPOINT");
    let table = table_name();
    let first_client = client(&endpoint).await;
    DynamoDbRateLimiter::create_table(&first_client, &table)
        .await
        .expect("create the limiter table");
    let make = |client: Client| {
        Arc::new(
            DynamoDbRateLimiter::new(client, &table, layers.clone())
                .with_clock(Arc::new(clock.clone())),
        ) as Arc<dyn RateLimiter>
    };
    LimiterPair {
        first: make(first_client),
        second: make(client(&endpoint).await),
    }
}

bedrock_chat_core::rate_limiter_conformance!(dynamodb);

/// A global layer too large to bind, checked first, over `quota` per key: the suite sees
/// the per-key layer, through the layering.
fn roomy_global(quota: Quota) -> Quota {
    Quota::new(1_000_000, quota.window()).expect("a valid quota")
}

fn layers(under_test: Vec<LayerUnderTest>) -> Layers {
    let mut layers: Option<Layers> = None;
    for layer in under_test {
        layers = Some(match (layers, layer.shared) {
            (None, None) => Layers::per_key(layer.quota),
            (None, Some(name)) => Layers::shared(name, layer.quota),
            (Some(l), None) => l.and_per_key(layer.quota),
            (Some(l), Some(name)) => l.and_shared(name, layer.quota),
        });
    }
    layers.expect("at least one layer")
}

/// [`DynamoDbRateLimiter`] over several layers: one transaction over all of them.
mod native_layered {
    use super::*;

    async fn layered(quota: Quota, clock: ManualClock) -> LimiterPair {
        dynamodb_pair(
            Layers::shared("global", roomy_global(quota)).and_per_key(quota),
            clock,
        )
        .await
    }

    bedrock_chat_core::rate_limiter_conformance!(layered);

    async fn native(under_test: Vec<LayerUnderTest>, clock: ManualClock) -> Arc<dyn RateLimiter> {
        dynamodb_pair(layers(under_test), clock).await.first
    }

    bedrock_chat_core::layered_rate_limiter_conformance!(native);
}

/// The generic [`LayeredRateLimiter`] over DynamoDB limiters, one per layer.
mod generic_layered {
    use super::*;

    async fn layered(quota: Quota, clock: ManualClock) -> LimiterPair {
        let global = dynamodb_pair(roomy_global(quota).into(), clock.clone()).await;
        let per_key = dynamodb_pair(quota.into(), clock).await;
        let make = |global, per_key| {
            Arc::new(LayeredRateLimiter::shared("global", global).and_per_key(per_key))
                as Arc<dyn RateLimiter>
        };
        LimiterPair {
            first: make(global.first, per_key.first),
            second: make(global.second, per_key.second),
        }
    }

    bedrock_chat_core::rate_limiter_conformance!(layered);
}

/// [`FailurePolicyLimiter`] over [`DynamoDbRateLimiter`], both policies.
mod fail_policy {
    use super::*;

    async fn wrapped(quota: Quota, clock: ManualClock) -> LimiterPair {
        let pair = dynamodb(quota, clock).await;
        LimiterPair {
            first: Arc::new(FailurePolicyLimiter::new(
                pair.first,
                FailurePolicy::FailOpen,
            )),
            second: Arc::new(FailurePolicyLimiter::new(
                pair.second,
                FailurePolicy::FailClosed,
            )),
        }
    }

    bedrock_chat_core::rate_limiter_conformance!(wrapped);
}

#[tokio::test]
async fn creating_the_table_twice_is_fine() {
    let endpoint = service_url("BEDROCK_CHAT_TEST_DYNAMODB_ENDPOINT");
    let client = client(&endpoint).await;
    let table = table_name();
    DynamoDbRateLimiter::create_table(&client, &table)
        .await
        .expect("create");
    DynamoDbRateLimiter::create_table(&client, &table)
        .await
        .expect("create again");
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .expect("describe TTL");
    let spec = ttl.time_to_live_description().expect("a TTL description");
    assert_eq!(spec.attribute_name(), Some("expires_at"));
}

#[tokio::test]
async fn the_windows_counter_expires_a_window_after_it_ends() {
    let endpoint = service_url("BEDROCK_CHAT_TEST_DYNAMODB_ENDPOINT");
    let client = client(&endpoint).await;
    let table = table_name();
    DynamoDbRateLimiter::create_table(&client, &table)
        .await
        .expect("create");
    // 2030-01-01T00:00:15Z, 15 s into a one-minute window.
    let clock = ManualClock::at_millis(1_893_456_015_000);
    let limiter =
        DynamoDbRateLimiter::new(client.clone(), &table, Quota::per_minute(5).expect("quota"))
            .with_prefix("ttl-test")
            .with_clock(Arc::new(clock));
    limiter.check("k", 1).await.expect("check");
    let items = client.scan().table_name(&table).send().await.expect("scan");
    let item = &items.items()[0];
    assert_eq!(item["pk"].as_s().expect("pk"), "ttl-test#60000#k");
    assert_eq!(
        item["window"].as_n().expect("window"),
        &(1_893_456_015_000i64 / 60_000).to_string()
    );
    assert_eq!(item["count"].as_n().expect("count"), "1");
    // The window ends at :01:00; the counter lives one more window, to :02:00.
    assert_eq!(item["expires_at"].as_n().expect("expires_at"), "1893456120");
}

#[tokio::test]
async fn an_unreachable_dynamodb_is_unavailable_and_the_policy_decides() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let client = client(&format!("http://127.0.0.1:{port}")).await;
    let limiter = Arc::new(DynamoDbRateLimiter::new(
        client,
        "nowhere",
        Quota::per_minute(3).expect("quota"),
    ));
    let err = limiter
        .check("k", 1)
        .await
        .expect_err("nothing listens there");
    assert!(matches!(err, RateLimitError::Unavailable { .. }), "{err:?}");
    let closed = FailurePolicyLimiter::new(limiter.clone(), FailurePolicy::FailClosed);
    assert!(closed.check("k", 1).await.is_err());
    let open = FailurePolicyLimiter::new(limiter, FailurePolicy::FailOpen);
    assert!(open.check("k", 1).await.expect("fail open").allowed);
}

#[tokio::test]
async fn a_missing_table_is_a_backend_error_not_an_allowance() {
    let endpoint = service_url("BEDROCK_CHAT_TEST_DYNAMODB_ENDPOINT");
    let limiter = DynamoDbRateLimiter::new(
        client(&endpoint).await,
        &table_name(),
        Quota::per_minute(3).expect("quota"),
    );
    let err = limiter.check("k", 1).await.expect_err("no such table");
    assert!(matches!(err, RateLimitError::Backend { .. }), "{err:?}");
}

#[tokio::test]
async fn ping_answers_for_an_existing_table() {
    let endpoint = service_url("BEDROCK_CHAT_TEST_DYNAMODB_ENDPOINT");
    let client = client(&endpoint).await;
    let table = table_name();
    DynamoDbRateLimiter::create_table(&client, &table)
        .await
        .expect("create");
    let limiter = DynamoDbRateLimiter::new(client, &table, Quota::per_minute(3).expect("quota"));
    limiter.ping().await.expect("the table answers");
}

#[tokio::test]
async fn ping_of_a_missing_table_is_a_backend_error() {
    let endpoint = service_url("BEDROCK_CHAT_TEST_DYNAMODB_ENDPOINT");
    let limiter = DynamoDbRateLimiter::new(
        client(&endpoint).await,
        &table_name(),
        Quota::per_minute(3).expect("quota"),
    );
    let err = limiter.ping().await.expect_err("no such table");
    assert!(matches!(err, RateLimitError::Backend { .. }), "{err:?}");
}

#[tokio::test]
async fn ping_of_an_unreachable_endpoint_is_unavailable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let limiter = DynamoDbRateLimiter::new(
        client(&format!("http://127.0.0.1:{port}")).await,
        "nowhere",
        Quota::per_minute(3).expect("quota"),
    );
    let err = limiter.ping().await.expect_err("nothing listens there");
    assert!(matches!(err, RateLimitError::Unavailable { .. }), "{err:?}");
    let open = FailurePolicyLimiter::new(Arc::new(limiter), FailurePolicy::FailOpen);
    assert!(matches!(
        open.ping().await,
        Err(RateLimitError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn from_url_creates_a_missing_table_and_reuses_an_existing_one() {
    assert!(
        std::env::var_os("AWS_ACCESS_KEY_ID").is_some(),
        "AWS_ACCESS_KEY_ID is not set: run scripts/test, which sets moto's credentials"
    );
    let endpoint = service_url("BEDROCK_CHAT_TEST_DYNAMODB_ENDPOINT");
    let table = table_name();
    let url = format!("dynamodb://{table}?endpoint={endpoint}&region=us-east-1");
    let quota = Quota::per_minute(2).expect("quota");
    let limiter = bedrock_chat_ratelimit::from_url(&url, quota, "requests")
        .await
        .expect("connect by URL, creating the table");
    assert_eq!(limiter.backend(), "dynamodb");
    limiter.ping().await.expect("ping");
    assert!(limiter.check("k", 1).await.expect("check").allowed);
    // A second process on the existing table shares the counter.
    let again = bedrock_chat_ratelimit::from_url(&url, quota, "requests")
        .await
        .expect("connect to the existing table");
    assert!(again.check("k", 1).await.expect("check").allowed);
    assert!(!limiter.check("k", 1).await.expect("check").allowed);
    // Another prefix counts apart.
    let other = bedrock_chat_ratelimit::from_url(&url, quota, "tokens")
        .await
        .expect("connect");
    assert!(other.check("k", 1).await.expect("check").allowed);
}

#[tokio::test]
async fn from_url_to_an_unreachable_endpoint_is_a_retryable_connect_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("dynamodb://limits?endpoint=http://127.0.0.1:{port}&region=us-east-1");
    let err = bedrock_chat_ratelimit::from_url(&url, Quota::per_minute(2).expect("quota"), "r")
        .await
        .err()
        .expect("nothing listens there");
    assert!(
        matches!(
            err,
            bedrock_chat_ratelimit::LimiterUrlError::Connect {
                backend: "dynamodb",
                error: RateLimitError::Unavailable { .. }
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}
