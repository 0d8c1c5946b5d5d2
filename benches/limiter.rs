//! InMemoryRateLimiter beside the governor crate's keyed limiter, same quota, same keys,
//! same run: one hot key, and 100k keys in turn. Run with
//! `cargo bench -p bedrock-chat-benches --bench limiter`.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use bedrock_chat_core::{Quota, RateLimiter};
use bedrock_chat_ratelimit::InMemoryRateLimiter;
use criterion::{criterion_group, criterion_main, Criterion};
use futures::FutureExt;

fn bench_limiters(c: &mut Criterion) {
    // A quota no run can exhaust, so every check takes the "allowed" path in both.
    let ours = InMemoryRateLimiter::new(Quota::per_minute(u64::from(u32::MAX)).expect("quota"));
    let governor = governor::RateLimiter::keyed(governor::Quota::per_minute(NonZeroU32::MAX));
    let keys: Vec<String> = (0..100_000)
        .map(|i| format!("203.0.{}.{}", i / 256, i % 256))
        .collect();

    for (name, key_count) in [("single_key", 1usize), ("keys_100k", keys.len())] {
        let mut group = c.benchmark_group(format!("limiter_{name}"));
        group.measurement_time(Duration::from_secs(4));
        let keys = &keys[..key_count];
        // Warm every key in both so that neither pays for first inserts in the timing.
        for key in keys {
            let _ = ours.check_now(key, 1);
            let _ = governor.check_key(key);
        }
        group.bench_function("governor_check_key", |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % key_count;
                black_box(governor.check_key(&keys[i]).is_ok())
            })
        });
        group.bench_function("in_memory_check_now", |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % key_count;
                black_box(ours.check_now(&keys[i], 1).map(|d| d.allowed))
            })
        });
        group.bench_function("in_memory_trait_check", |b| {
            let limiter: &dyn RateLimiter = &ours;
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % key_count;
                black_box(limiter.check(&keys[i], 1).now_or_never())
            })
        });
        group.finish();
    }
}

// criterion's macro generates an undocumented public fn.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, bench_limiters);
}
criterion_main!(group::benches);
