//! Load driver for the history stores: the append of one exchange and the read of the
//! last 50 messages, as ops/s and latency, beside each server's own round-trip floor
//! (`ping`: `SELECT 1`, `PING`, `DescribeTable`) measured in the same run; and PostgreSQL
//! at scale — the last-50 window of a 100k-message conversation and a page of a user's 10k
//! conversations — with `EXPLAIN ANALYZE` of the statements the store runs.
//!
//! Run with (each part runs only when its variable is set; SQLite always runs):
//! `psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE bench'` once, then
//! `BEDROCK_CHAT_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/bench BEDROCK_CHAT_BENCH_REDIS_URL=redis://127.0.0.1:6379/ BEDROCK_CHAT_BENCH_DYNAMODB_ENDPOINT=http://127.0.0.1:5555 cargo bench -p bedrock-chat-benches --features backends --bench stores`.
//! Loopback only; every loop is bounded in time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{Credentials, Region};
use bedrock_chat_core::{
    AppendRequest, HistoryStore, ListOptions, NewConversation, NewMessage, Usage, UserId,
};
use bedrock_chat_store::{
    DynamoDbConfig, DynamoDbHistoryStore, PostgresHistoryStore, RedisConfig, RedisHistoryStore,
    SqliteHistoryStore,
};

const RUN_FOR: Duration = Duration::from_secs(2);

struct Timing {
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Runs `op` back to back for [`RUN_FOR`] (at most 100k times).
async fn time<F, Fut>(mut op: F) -> Timing
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < RUN_FOR && i < 100_000 {
        let t = Instant::now();
        op(i).await;
        latencies.push(t.elapsed());
        i += 1;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    Timing {
        ops_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_us: at(0.5),
        p99_us: at(0.99),
    }
}

fn exchange(i: u64) -> Vec<NewMessage> {
    let question = NewMessage::user(format!("Question number {i}: how does this work?"));
    let answer =
        NewMessage::assistant("A short answer of the kind a model gives, a line or two long.")
            .replying_to(question.id)
            .with_model("bench")
            .with_usage(Usage::new(40, 20));
    vec![question, answer]
}

fn row(backend: &str, what: &str, t: &Timing) {
    println!(
        "| {backend} | {what} | {:.0} | {:.0} | {:.0} |",
        t.ops_per_sec, t.p50_us, t.p99_us
    );
}

async fn bench_store(backend: &str, store: Arc<dyn HistoryStore>) {
    let user = UserId::new(format!("bench-{}", uuid_like())).expect("user id");
    let floor = time(|_| {
        let store = Arc::clone(&store);
        async move { store.ping().await.expect("ping") }
    })
    .await;
    row(backend, "round-trip floor (ping)", &floor);

    let chat = store
        .create_conversation(&user, NewConversation::new("bench"))
        .await
        .expect("create");
    let append = time(|i| {
        let (store, user) = (Arc::clone(&store), user.clone());
        async move {
            store
                .append(&user, AppendRequest::existing(chat.id, exchange(i)))
                .await
                .expect("append");
        }
    })
    .await;
    row(backend, "append one exchange", &append);

    let last50 = time(|_| {
        let (store, user) = (Arc::clone(&store), user.clone());
        async move {
            let window = store
                .recent_messages(&user, chat.id, 50)
                .await
                .expect("recent");
            assert_eq!(window.len(), 50);
        }
    })
    .await;
    row(backend, "read the last 50 messages", &last50);
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    )
}

async fn postgres_at_scale(url: &str, store: &PostgresHistoryStore) {
    let pool = store.pool();
    let user = UserId::new(format!("scale-{}", std::process::id())).expect("user id");
    let chat = store
        .create_conversation(&user, NewConversation::new("100k messages"))
        .await
        .expect("create");
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO messages (id, chat_id, user_id, seq, role, content, metadata, created_at, \
                               updated_at) \
         SELECT gen_random_uuid(), $1, $2, g, \
                CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END, \
                'message number ' || g, '{}'::jsonb, now(), now() \
           FROM generate_series(1, 100000) g",
    )
    .bind(chat.id.as_uuid())
    .bind(user.as_str())
    .execute(pool)
    .await
    .expect("fill 100k messages");
    sqlx::query("UPDATE conversations SET last_seq = 100000, message_count = 100000 WHERE id = $1")
        .bind(chat.id.as_uuid())
        .execute(pool)
        .await
        .expect("count");
    let many = UserId::new(format!("many-{}", std::process::id())).expect("user id");
    sqlx::query(
        "INSERT INTO conversations (id, user_id, title, metadata, created_at, updated_at) \
         SELECT gen_random_uuid(), $1, 'conversation ' || g, '{}'::jsonb, \
                now() - g * interval '1 second', now() - g * interval '1 second' \
           FROM generate_series(1, 10000) g",
    )
    .bind(many.as_str())
    .execute(pool)
    .await
    .expect("fill 10k conversations");
    sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
    println!(
        "\n(filled 100k messages and 10k conversations in {:.1}s, url {url})\n",
        started.elapsed().as_secs_f64()
    );

    println!("| PostgreSQL at scale | ops/s | p50 (µs) | p99 (µs) |\n|---|---:|---:|---:|");
    let last50 = time(|_| {
        let user = user.clone();
        async move {
            let window = store
                .recent_messages(&user, chat.id, 50)
                .await
                .expect("recent");
            assert_eq!(window.first().map(|m| m.seq), Some(99_951));
        }
    })
    .await;
    println!(
        "| last 50 of a 100k-message conversation | {:.0} | {:.0} | {:.0} |",
        last50.ops_per_sec, last50.p50_us, last50.p99_us
    );
    let first = store
        .list_conversations(&many, ListOptions::first(20))
        .await
        .expect("list");
    let first_page = time(|_| {
        let many = many.clone();
        async move {
            let page = store
                .list_conversations(&many, ListOptions::first(20))
                .await
                .expect("list");
            assert_eq!(page.items.len(), 20);
        }
    })
    .await;
    println!(
        "| first page (20) of a user's 10k conversations | {:.0} | {:.0} | {:.0} |",
        first_page.ops_per_sec, first_page.p50_us, first_page.p99_us
    );
    // A page deep in the listing, by keyset cursor.
    let mut cursor = first.next_cursor.clone();
    for _ in 0..24 {
        let page = store
            .list_conversations(&many, ListOptions::first(200).with_cursor(cursor))
            .await
            .expect("page");
        cursor = page.next_cursor;
    }
    let deep = time(|_| {
        let (many, cursor) = (many.clone(), cursor.clone());
        async move {
            let page = store
                .list_conversations(&many, ListOptions::first(20).with_cursor(cursor))
                .await
                .expect("list");
            assert_eq!(page.items.len(), 20);
        }
    })
    .await;
    println!(
        "| a page (20) after the first 4,820 of 10k conversations | {:.0} | {:.0} | {:.0} |",
        deep.ops_per_sec, deep.p50_us, deep.p99_us
    );

    for (what, sql, bind_user) in [
        (
            "last 50 messages",
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT m.* FROM messages m \
             WHERE m.chat_id = $1 \
               AND EXISTS (SELECT 1 FROM conversations c WHERE c.id = $1 AND c.user_id = $2) \
             ORDER BY m.seq DESC LIMIT 50",
            user.as_str().to_owned(),
        ),
        (
            "a page of conversations",
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM conversations WHERE user_id = $2 \
             AND (updated_at, id) < (now() - interval '4820 seconds', $1) \
             ORDER BY updated_at DESC, id DESC LIMIT 20",
            many.as_str().to_owned(),
        ),
    ] {
        let plan: Vec<(String,)> = sqlx::query_as(sql)
            .bind(chat.id.as_uuid())
            .bind(bind_user)
            .fetch_all(pool)
            .await
            .expect("explain");
        println!("\nEXPLAIN of {what}:\n```");
        for (line,) in plan {
            println!("{line}");
        }
        println!("```");
    }
    sqlx::query("DELETE FROM conversations WHERE user_id = ANY($1)")
        .bind(vec![user.as_str().to_owned(), many.as_str().to_owned()])
        .execute(pool)
        .await
        .expect("clean up");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!("| backend | operation | ops/s | p50 (µs) | p99 (µs) |\n|---|---|---:|---:|---:|");
        let path =
            std::env::temp_dir().join(format!("bedrock-chat-bench-{}.db", std::process::id()));
        let sqlite = SqliteHistoryStore::open(&format!("sqlite://{}", path.display()))
            .await
            .expect("open sqlite");
        bench_store("SQLite (file, WAL)", Arc::new(sqlite.clone())).await;
        sqlite.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }

        let postgres = match std::env::var("BEDROCK_CHAT_BENCH_POSTGRES_URL") {
            Ok(url) => {
                let store = PostgresHistoryStore::open(&url)
                    .await
                    .expect("connect postgres");
                bench_store("PostgreSQL", Arc::new(store.clone())).await;
                Some((url, store))
            }
            Err(_) => None,
        };
        if let Ok(url) = std::env::var("BEDROCK_CHAT_BENCH_REDIS_URL") {
            let config = RedisConfig::new(url).with_prefix(format!("bench-{}", std::process::id()));
            let store = RedisHistoryStore::connect(config)
                .await
                .expect("connect redis");
            bench_store("Redis", Arc::new(store)).await;
        }
        if let Ok(endpoint) = std::env::var("BEDROCK_CHAT_BENCH_DYNAMODB_ENDPOINT") {
            let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(endpoint)
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
                .load()
                .await;
            let client = aws_sdk_dynamodb::Client::new(&config);
            let table = format!("bench-history-{}", std::process::id());
            DynamoDbHistoryStore::create_table(&client, &table)
                .await
                .expect("create table");
            bench_store(
                "DynamoDB on moto (reference only)",
                Arc::new(DynamoDbHistoryStore::new(
                    client,
                    DynamoDbConfig::new(table),
                )),
            )
            .await;
        }
        if let Some((url, store)) = postgres {
            postgres_at_scale(&url, &store).await;
        }
    });
}
