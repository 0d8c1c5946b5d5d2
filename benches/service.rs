//! ChatService overhead per send, with memory backends and an instant model, beside the
//! model call alone. Run with `cargo bench -p bedrock-chat-benches --bench service`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bedrock_chat_benches::InstantModel;
use bedrock_chat_core::{
    ChatId, ChatModel, ChatService, ModelMessage, ModelRequest, Quota, SendRequest, UserId,
};
use bedrock_chat_ratelimit::InMemoryRateLimiter;
use bedrock_chat_store::InMemoryHistoryStore;
use criterion::{criterion_group, criterion_main, Criterion};
use tokio::runtime::Runtime;

fn service(limits: bool) -> ChatService {
    let mut builder = ChatService::builder(
        Arc::new(InstantModel),
        Arc::new(InMemoryHistoryStore::new()),
    );
    if limits {
        let big = Quota::per_minute(u64::MAX / 2).expect("quota");
        builder = builder
            .request_limiter(Arc::new(InMemoryRateLimiter::new(big)))
            .token_budget(Arc::new(InMemoryRateLimiter::new(big)));
    }
    builder.build()
}

/// A conversation that already holds `turns` exchanges.
async fn conversation(service: &ChatService, user: &UserId, turns: usize) -> ChatId {
    let first = service
        .send(SendRequest::new(user.clone(), "first question"))
        .await
        .expect("send");
    for i in 1..turns {
        service
            .send(SendRequest::new(user.clone(), format!("question {i}")).in_chat(first.chat_id))
            .await
            .expect("send");
    }
    first.chat_id
}

/// Times `iters` sends on a fresh service (so memory stays bounded per sample).
fn time_sends(rt: &Runtime, iters: u64, limits: bool, turns: usize, stream: bool) -> Duration {
    rt.block_on(async {
        let service = service(limits);
        let user = UserId::new("bench-user").expect("user id");
        let chat = if turns > 0 {
            Some(conversation(&service, &user, turns).await)
        } else {
            None
        };
        let start = Instant::now();
        for _ in 0..iters {
            let mut request = SendRequest::new(user.clone(), "How does this work?");
            request.chat_id = chat;
            let reply = if stream {
                service
                    .send_stream(request)
                    .await
                    .expect("send_stream")
                    .collect_reply()
                    .await
            } else {
                service.send(request).await
            };
            black_box(reply.expect("send"));
        }
        start.elapsed()
    })
}

fn bench_service(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("chat_service");
    group.measurement_time(Duration::from_secs(5));

    let request = ModelRequest::new([ModelMessage::user("How does this work?")]);
    group.bench_function("model_call_alone", |b| {
        b.iter(|| rt.block_on(InstantModel.converse(black_box(request.clone()))))
    });
    group.bench_function("send_new_conversation", |b| {
        b.iter_custom(|iters| time_sends(&rt, iters, false, 0, false))
    });
    group.bench_function("send_in_conversation_of_10_turns", |b| {
        b.iter_custom(|iters| time_sends(&rt, iters, false, 10, false))
    });
    group.bench_function("send_with_request_limit_and_budget", |b| {
        b.iter_custom(|iters| time_sends(&rt, iters, true, 10, false))
    });
    group.bench_function("send_stream_in_conversation_of_10_turns", |b| {
        b.iter_custom(|iters| time_sends(&rt, iters, false, 10, true))
    });
    group.finish();
}

// criterion's macro generates an undocumented public fn.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, bench_service);
}
criterion_main!(group::benches);
