//! The rate limiter conformance suite on [`RedisRateLimiter`] against the real Redis that
//! `scripts/test` provides (two limiters = two connections, as two app servers), and what
//! happens when Redis goes away, on a private server this test starts and stops.
#![cfg(feature = "redis")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bedrock_chat_core::conformance::limiter::{LayerUnderTest, LimiterPair};
use bedrock_chat_core::conformance::{service_url, unique_prefix};
use bedrock_chat_core::{ManualClock, Quota, RateLimitError, RateLimiter};
use bedrock_chat_ratelimit::{
    FailurePolicy, FailurePolicyLimiter, LayeredRateLimiter, Layers, RedisLimiterConfig,
    RedisRateLimiter,
};

fn config(prefix: String) -> RedisLimiterConfig {
    RedisLimiterConfig::new()
        .with_prefix(prefix)
        .with_response_timeout(Duration::from_millis(500))
        .with_connection_timeout(Duration::from_millis(500))
}

async fn redis(quota: Quota, clock: ManualClock) -> LimiterPair {
    let url = service_url("BEDROCK_CHAT_TEST_REDIS_URL");
    let config = config(unique_prefix());
    let mut handles = Vec::new();
    for _ in 0..2 {
        let limiter = RedisRateLimiter::connect_with_clock(
            &url,
            quota,
            config.clone(),
            Arc::new(clock.clone()),
        )
        .await
        .expect("connect to Redis");
        handles.push(Arc::new(limiter) as Arc<dyn RateLimiter>);
    }
    LimiterPair {
        second: handles.pop().expect("two handles"),
        first: handles.pop().expect("two handles"),
    }
}

bedrock_chat_core::rate_limiter_conformance!(redis);

async fn connect(layers: impl Into<Layers>, prefix: &str, clock: &ManualClock) -> RedisRateLimiter {
    let url = service_url("BEDROCK_CHAT_TEST_REDIS_URL");
    RedisRateLimiter::connect_with_clock(
        &url,
        layers,
        config(prefix.to_owned()),
        Arc::new(clock.clone()),
    )
    .await
    .expect("connect to Redis")
}

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

/// [`RedisRateLimiter`] over several layers: one script over all of them.
mod native_layered {
    use super::*;

    async fn layered(quota: Quota, clock: ManualClock) -> LimiterPair {
        let prefix = unique_prefix();
        let layers = Layers::shared("global", roomy_global(quota)).and_per_key(quota);
        LimiterPair {
            first: Arc::new(connect(layers.clone(), &prefix, &clock).await),
            second: Arc::new(connect(layers, &prefix, &clock).await),
        }
    }

    bedrock_chat_core::rate_limiter_conformance!(layered);

    async fn native(under_test: Vec<LayerUnderTest>, clock: ManualClock) -> Arc<dyn RateLimiter> {
        Arc::new(connect(layers(under_test), &unique_prefix(), &clock).await)
    }

    bedrock_chat_core::layered_rate_limiter_conformance!(native);
}

/// The generic [`LayeredRateLimiter`] over Redis limiters, one per layer.
mod generic_layered {
    use super::*;

    async fn layered(quota: Quota, clock: ManualClock) -> LimiterPair {
        let prefix = unique_prefix();
        let mut handles = Vec::new();
        for _ in 0..2 {
            let global = connect(roomy_global(quota), &format!("{prefix}:global"), &clock).await;
            let per_key = connect(quota, &format!("{prefix}:per-key"), &clock).await;
            handles.push(Arc::new(
                LayeredRateLimiter::shared("global", Arc::new(global))
                    .and_per_key(Arc::new(per_key)),
            ) as Arc<dyn RateLimiter>);
        }
        LimiterPair {
            second: handles.pop().expect("two handles"),
            first: handles.pop().expect("two handles"),
        }
    }

    bedrock_chat_core::rate_limiter_conformance!(layered);
}

/// [`FailurePolicyLimiter`] over [`RedisRateLimiter`], both policies.
mod fail_policy {
    use super::*;

    async fn wrapped(quota: Quota, clock: ManualClock) -> LimiterPair {
        let pair = redis(quota, clock).await;
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

/// A redis-server of this test's own, on a free loopback port, stopped when dropped.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed on this machine");
        let server = Self {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the private redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_server_is_unavailable_and_the_limiter_recovers_when_it_returns() {
    let mut server = PrivateRedis::start();
    let quota = Quota::per_minute(5).expect("quota");
    let limiter = Arc::new(
        RedisRateLimiter::connect(&server.url(), quota, config(unique_prefix()))
            .await
            .expect("connect"),
    );
    assert!(limiter.check("k", 1).await.expect("check").allowed);

    server.stop();
    let err = limiter.check("k", 1).await.expect_err("the server is gone");
    assert!(matches!(err, RateLimitError::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.http_status(), 503);

    let closed = FailurePolicyLimiter::new(limiter.clone(), FailurePolicy::FailClosed);
    assert!(matches!(
        closed.check("k", 1).await,
        Err(RateLimitError::Unavailable { .. })
    ));
    let open = FailurePolicyLimiter::new(limiter.clone(), FailurePolicy::FailOpen);
    let allowed = open.check("k", 1).await.expect("fail open allows");
    assert!(allowed.allowed);
    assert_eq!(allowed.limit, 5);

    let _server = PrivateRedis::start_on(server.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match limiter.check("k", 1).await {
            Ok(decision) => {
                assert!(decision.allowed);
                break;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the limiter did not recover: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_unavailable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let quota = Quota::per_minute(5).expect("quota");
    let result = RedisRateLimiter::connect(
        &format!("redis://127.0.0.1:{port}/"),
        quota,
        config(unique_prefix()),
    )
    .await;
    assert!(
        matches!(result, Err(RateLimitError::Unavailable { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn limiters_with_different_prefixes_do_not_share_counts() {
    let url = service_url("BEDROCK_CHAT_TEST_REDIS_URL");
    let quota = Quota::per_minute(1).expect("quota");
    let a = RedisRateLimiter::connect(&url, quota, config(unique_prefix()))
        .await
        .expect("connect");
    let b = RedisRateLimiter::connect(&url, quota, config(unique_prefix()))
        .await
        .expect("connect");
    assert!(a.check("same-key", 1).await.expect("check").allowed);
    assert!(b.check("same-key", 1).await.expect("check").allowed);
    assert!(!a.check("same-key", 1).await.expect("check").allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_decision_is_one_evalsha() {
    let quota = Quota::per_minute(1_000).expect("quota");
    decisions_are_one_evalsha_each(quota.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_layered_decision_is_one_evalsha() {
    let layers = Layers::per_key(Quota::per_minute(1_000).expect("quota"))
        .and_shared("global", Quota::per_second(10_000).expect("quota"));
    decisions_are_one_evalsha_each(layers).await;
}

/// 100 checks on a private server reach it as 100 `EVALSHA`s and nothing else.
async fn decisions_are_one_evalsha_each(layers: Layers) {
    let server = PrivateRedis::start();
    let count = layers.as_slice().len() as u64;
    let limiter = RedisRateLimiter::connect(&server.url(), layers, config(unique_prefix()))
        .await
        .expect("connect");
    // The first call loads the script (EVALSHA, NOSCRIPT, then EVAL); count from after it.
    limiter.check("warm-up", 1).await.expect("check");
    let client = redis::Client::open(server.url()).expect("client");
    let mut stats = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut stats)
        .await
        .expect("reset");
    for i in 0..100 {
        let decision = limiter
            .check(&format!("key-{}", i % 7), 1)
            .await
            .expect("check");
        assert!(decision.allowed);
    }
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut stats)
        .await
        .expect("info");
    let calls = |command: &str| {
        info.lines()
            .find(|l| l.starts_with(&format!("cmdstat_{command}:")))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(calls("evalsha"), 100, "{info}");
    // commandstats also counts what the script itself calls; nothing else may appear.
    let script_calls = ["get", "incrby", "pexpire", "decrby"];
    let others: Vec<&str> = info
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| l.split(':').next())
        .filter(|c| {
            !["evalsha", "config|resetstat", "info"].contains(c) && !script_calls.contains(c)
        })
        .collect();
    assert!(
        others.is_empty(),
        "no other command may reach the server: {others:?}"
    );
    assert!(
        calls("get") <= 100 * count && calls("incrby") <= 100 * count,
        "{info}"
    );
}

#[tokio::test]
async fn ping_answers_while_the_server_is_up_and_is_unavailable_once_it_is_gone() {
    let mut server = PrivateRedis::start();
    let limiter = RedisRateLimiter::connect(
        &server.url(),
        Quota::per_minute(5).expect("quota"),
        config(unique_prefix()),
    )
    .await
    .expect("connect");
    limiter.ping().await.expect("the server answers");
    server.stop();
    let err = limiter.ping().await.expect_err("the server is gone");
    assert!(matches!(err, RateLimitError::Unavailable { .. }), "{err:?}");
    // A health check tells the truth even when requests fail open.
    let open = FailurePolicyLimiter::new(Arc::new(limiter), FailurePolicy::FailOpen);
    assert!(matches!(
        open.ping().await,
        Err(RateLimitError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn from_url_connects_with_the_url_prefix_in_front_of_the_hosts() {
    let outer = unique_prefix();
    let url = format!(
        "{}?prefix={outer}",
        service_url("BEDROCK_CHAT_TEST_REDIS_URL")
    );
    let quota = Quota::per_minute(2).expect("quota");
    let limiter = bedrock_chat_ratelimit::from_url(&url, quota, "requests")
        .await
        .expect("connect by URL");
    assert_eq!(limiter.backend(), "redis");
    limiter.ping().await.expect("ping");
    assert!(limiter.check("k", 1).await.expect("check").allowed);
    // The same counter, reached directly under the joined prefix.
    let direct = RedisRateLimiter::connect(
        &service_url("BEDROCK_CHAT_TEST_REDIS_URL"),
        quota,
        config(format!("{outer}:requests")),
    )
    .await
    .expect("connect");
    assert!(direct.check("k", 1).await.expect("check").allowed);
    assert!(!limiter.check("k", 1).await.expect("check").allowed);
}

#[tokio::test]
async fn from_url_decides_layers_natively() {
    let url = service_url("BEDROCK_CHAT_TEST_REDIS_URL");
    let layers = Layers::per_key(Quota::per_minute(5).expect("quota"))
        .and_shared("global", Quota::per_minute(2).expect("quota"));
    let limiter = bedrock_chat_ratelimit::from_url(&url, layers, &unique_prefix())
        .await
        .expect("connect by URL");
    assert!(limiter.check("a", 1).await.expect("check").allowed);
    assert!(limiter.check("b", 1).await.expect("check").allowed);
    let refused = limiter.check("c", 1).await.expect("check");
    assert!(!refused.allowed, "the global layer is spent");
    assert_eq!(refused.limit, 2);
}

#[tokio::test]
async fn from_url_to_a_closed_port_is_a_retryable_connect_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let err = bedrock_chat_ratelimit::from_url(
        &format!("redis://127.0.0.1:{port}/"),
        Quota::per_minute(5).expect("quota"),
        "requests",
    )
    .await
    .err()
    .expect("nothing listens there");
    assert!(
        matches!(
            err,
            bedrock_chat_ratelimit::LimiterUrlError::Connect {
                backend: "redis",
                error: RateLimitError::Unavailable { .. }
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}
