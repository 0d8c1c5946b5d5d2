//! Load driver: decisions per second of the Redis limiter (one quota, and two layers in
//! one script) beside a bare `EVALSHA` of a trivial script over the same kind of
//! connection at the same concurrency, and of the DynamoDB limiter on a moto server (for
//! reference only: moto is not DynamoDB).
//!
//! Run with
//! `BEDROCK_CHAT_BENCH_REDIS_URL=redis://127.0.0.1:6379/ BEDROCK_CHAT_BENCH_DYNAMODB_ENDPOINT=http://127.0.0.1:5555 cargo bench -p bedrock-chat-benches --features backends --bench distributed_limiters`
//! (each part runs only when its variable is set). Loopback only; every loop is bounded
//! in time.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{Credentials, Region};
use bedrock_chat_core::{Quota, RateLimiter};
use bedrock_chat_ratelimit::{DynamoDbRateLimiter, Layers, RedisLimiterConfig, RedisRateLimiter};

const RUN_FOR: Duration = Duration::from_secs(3);

/// Runs `op` from `concurrency` tasks for [`RUN_FOR`]; operations per second.
async fn drive<F, Fut>(concurrency: usize, op: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + RUN_FOR;
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let op = op.clone();
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut i = 0;
                while Instant::now() < deadline {
                    op(task, i).await;
                    i += 1;
                }
                done.fetch_add(i, Ordering::Relaxed);
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("driver task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

async fn redis(url: &str) {
    let run = format!("bench-{}", std::process::id());
    let quota = Quota::per_minute(u64::MAX / 4).expect("quota");
    let config = RedisLimiterConfig::new().with_prefix(run.clone());
    let limiter = Arc::new(
        RedisRateLimiter::connect(url, quota, config.clone())
            .await
            .expect("connect"),
    );
    // Seed 003's shape: a per-key layer and one shared by every key, in one EVALSHA.
    let layers = Layers::per_key(quota).and_shared("global", quota);
    let layered = Arc::new(
        RedisRateLimiter::connect(url, layers, config.with_prefix(format!("{run}:layered")))
            .await
            .expect("connect"),
    );
    let client = redis::Client::open(url).expect("client");
    let bare = redis::aio::ConnectionManager::new(client)
        .await
        .expect("connect");
    let trivial = Arc::new(redis::Script::new("return 1"));
    // The least any counting script can do: one INCRBY.
    let counting = Arc::new(redis::Script::new(
        "return redis.call('INCRBY', KEYS[1], 1)",
    ));

    println!(
        "| concurrency | bare EVALSHA `return 1` (ops/s) | bare EVALSHA of one INCRBY (ops/s) \
         | RedisRateLimiter::check (decisions/s) | limiter / `return 1` | limiter / INCRBY \
         | layered check, per key + shared (decisions/s) | layered / `return 1` |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for concurrency in [1, 8, 32, 128] {
        let (script, connection) = (Arc::clone(&trivial), bare.clone());
        let bare_rate = drive(concurrency, move |task, _| {
            let (script, mut connection) = (Arc::clone(&script), connection.clone());
            async move {
                let _: i64 = script
                    .key(format!("bare:{task}"))
                    .invoke_async(&mut connection)
                    .await
                    .expect("evalsha");
            }
        })
        .await;
        let (script, connection) = (Arc::clone(&counting), bare.clone());
        let incr_rate = drive(concurrency, move |task, _| {
            let (script, mut connection) = (Arc::clone(&script), connection.clone());
            async move {
                let _: i64 = script
                    .key(format!("bare:incr:{task}"))
                    .invoke_async(&mut connection)
                    .await
                    .expect("evalsha");
            }
        })
        .await;
        let limiter = Arc::clone(&limiter);
        let limiter_rate = drive(concurrency, move |task, _| {
            let limiter = Arc::clone(&limiter);
            async move {
                let decision = limiter
                    .check(&format!("user-{task}"), 1)
                    .await
                    .expect("check");
                assert!(decision.allowed);
            }
        })
        .await;
        let layered = Arc::clone(&layered);
        let layered_rate = drive(concurrency, move |task, _| {
            let layered = Arc::clone(&layered);
            async move {
                let decision = layered
                    .check(&format!("user-{task}"), 1)
                    .await
                    .expect("check");
                assert!(decision.allowed);
            }
        })
        .await;
        println!(
            "| {concurrency} | {bare_rate:.0} | {incr_rate:.0} | {limiter_rate:.0} | {:.0}% | {:.0}% \
             | {layered_rate:.0} | {:.0}% |",
            100.0 * limiter_rate / bare_rate,
            100.0 * limiter_rate / incr_rate,
            100.0 * layered_rate / bare_rate
        );
    }
}

async fn dynamodb(endpoint: &str) {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("bench-{}", std::process::id());
    DynamoDbRateLimiter::create_table(&client, &table)
        .await
        .expect("create table");
    let quota = Quota::per_minute(u64::MAX / 4).expect("quota");
    let limiter = Arc::new(DynamoDbRateLimiter::new(client, &table, quota));
    println!("| concurrency | DynamoDbRateLimiter::check on moto (decisions/s) |");
    println!("|---:|---:|");
    for concurrency in [1, 8] {
        let limiter = Arc::clone(&limiter);
        let rate = drive(concurrency, move |task, _| {
            let limiter = Arc::clone(&limiter);
            async move {
                limiter
                    .check(&format!("user-{task}"), 1)
                    .await
                    .expect("check");
            }
        })
        .await;
        println!("| {concurrency} | {rate:.0} |");
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        match std::env::var("BEDROCK_CHAT_BENCH_REDIS_URL") {
            Ok(url) => redis(&url).await,
            Err(_) => println!("BEDROCK_CHAT_BENCH_REDIS_URL not set: Redis part not run"),
        }
        match std::env::var("BEDROCK_CHAT_BENCH_DYNAMODB_ENDPOINT") {
            Ok(endpoint) => dynamodb(&endpoint).await,
            Err(_) => {
                println!("BEDROCK_CHAT_BENCH_DYNAMODB_ENDPOINT not set: DynamoDB part not run")
            }
        }
    });
}
