//! The usage ledger: recorded per user and UTC day, kept apart from the history.

use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};

use super::{append, assert_invalid, conversation, exchange, MakeStore};
use crate::conformance::random_user;
use crate::{DailyUsage, Timestamp, Usage};

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_else(|| panic!("{y}-{m}-{d} is a date"))
}

fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> Timestamp {
    Utc.with_ymd_and_hms(y, m, d, h, min, s)
        .single()
        .unwrap_or_else(|| panic!("{y}-{m}-{d} {h}:{min}:{s} is a time"))
}

/// What a user spent stays recorded when the conversations and messages it was spent on
/// are deleted.
pub async fn recorded_usage_survives_deleting_the_history(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let fresh = t.store.usage(&user).await.expect("usage of a new user");
    assert_eq!(fresh, Default::default(), "nothing recorded is all zeros");

    let chat = conversation(&*t.store, &user).await;
    let kept = conversation(&*t.store, &user).await;
    let now = Utc::now();
    let stored = append(
        &*t.store,
        &user,
        chat.id,
        exchange("q1", "a1", Usage::new(10, 5)),
    )
    .await;
    t.store
        .record_usage(&user, now, Usage::new(10, 5))
        .await
        .expect("record");
    append(
        &*t.store,
        &user,
        kept.id,
        exchange("q2", "a2", Usage::new(20, 7)),
    )
    .await;
    t.store
        .record_usage(&user, now, Usage::new(20, 7))
        .await
        .expect("record");

    let totals = t.store.usage(&user).await.expect("usage");
    assert_eq!(totals.conversations, 2);
    assert_eq!(totals.messages, 4);
    assert_eq!(totals.usage, Usage::new(30, 12));
    assert_eq!(totals.calls, 2);

    t.store
        .delete_message(&user, stored[1].id)
        .await
        .expect("delete a reply");
    t.store
        .delete_conversation(&user, chat.id)
        .await
        .expect("delete a conversation");
    let totals = t.store.usage(&user).await.expect("usage after deletes");
    assert_eq!(totals.conversations, 1);
    assert_eq!(totals.messages, 2);
    assert_eq!(
        totals.usage,
        Usage::new(30, 12),
        "the ledger keeps what was spent"
    );
    assert_eq!(totals.calls, 2);

    t.store
        .delete_conversation(&user, kept.id)
        .await
        .expect("delete the last conversation");
    let totals = t.store.usage(&user).await.expect("usage with no history");
    assert_eq!((totals.conversations, totals.messages), (0, 0));
    assert_eq!((totals.usage, totals.calls), (Usage::new(30, 12), 2));
    let today = now.date_naive();
    assert_eq!(
        t.store
            .daily_usage(&user, today, today)
            .await
            .expect("daily usage"),
        [DailyUsage {
            day: today,
            usage: Usage::new(30, 12),
            calls: 2
        }]
    );
}

/// Calls land in their UTC day's bucket; a range returns the days with calls in it,
/// oldest first, both ends included; bad ranges are refused.
pub async fn daily_usage_buckets_by_utc_day(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let calls = [
        (at(2025, 2, 28, 12, 0, 0), Usage::new(1, 1)),
        (at(2025, 3, 1, 0, 0, 0), Usage::new(2, 3)),
        (at(2025, 3, 1, 23, 59, 59), Usage::new(4, 5)),
        (at(2025, 3, 2, 0, 0, 0), Usage::new(100, 0)),
        (at(2025, 3, 4, 8, 30, 0), Usage::new(0, 7)),
        // A call that used no tokens still counts as a call.
        (at(2025, 3, 4, 9, 0, 0), Usage::default()),
    ];
    // Out of order on purpose: the buckets do not depend on the order of recording.
    for (when, usage) in calls.iter().rev() {
        t.store
            .record_usage(&user, *when, *usage)
            .await
            .expect("record");
    }
    let march = t
        .store
        .daily_usage(&user, day(2025, 3, 1), day(2025, 3, 31))
        .await
        .expect("march");
    assert_eq!(
        march,
        [
            DailyUsage {
                day: day(2025, 3, 1),
                usage: Usage::new(6, 8),
                calls: 2
            },
            DailyUsage {
                day: day(2025, 3, 2),
                usage: Usage::new(100, 0),
                calls: 1
            },
            DailyUsage {
                day: day(2025, 3, 4),
                usage: Usage::new(0, 7),
                calls: 2
            },
        ]
    );
    let one_day = t
        .store
        .daily_usage(&user, day(2025, 2, 28), day(2025, 2, 28))
        .await
        .expect("one day");
    assert_eq!(one_day.len(), 1);
    assert_eq!((one_day[0].usage, one_day[0].calls), (Usage::new(1, 1), 1));
    assert!(t
        .store
        .daily_usage(&user, day(2025, 3, 5), day(2026, 3, 5))
        .await
        .expect("a year with nothing")
        .is_empty());
    let totals = t.store.usage(&user).await.expect("usage");
    assert_eq!((totals.usage, totals.calls), (Usage::new(107, 16), 6));

    // 366 days, both ends counted, is the longest range.
    t.store
        .daily_usage(&user, day(2024, 1, 1), day(2024, 12, 31))
        .await
        .expect("366 days");
    assert_invalid(
        t.store
            .daily_usage(&user, day(2024, 1, 1), day(2025, 1, 1))
            .await,
        "367 days",
    );
    assert_invalid(
        t.store
            .daily_usage(&user, day(2025, 3, 2), day(2025, 3, 1))
            .await,
        "from after to",
    );
}

/// One user's recorded usage never shows in another's, and concurrent records each count
/// once (the ledger adds atomically).
pub async fn usage_of_another_user_is_separate(make: &impl MakeStore) {
    let t = make.make().await;
    let (alice, bob, carol) = (random_user(), random_user(), random_user());
    let when = at(2025, 6, 15, 12, 0, 0);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&t.store);
            let user = if i % 2 == 0 {
                alice.clone()
            } else {
                bob.clone()
            };
            let usage = if i % 2 == 0 {
                Usage::new(1, 2)
            } else {
                Usage::new(10, 20)
            };
            tokio::spawn(async move { store.record_usage(&user, when, usage).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("record");
    }
    let june = day(2025, 6, 15);
    for (user, usage) in [(&alice, Usage::new(10, 20)), (&bob, Usage::new(100, 200))] {
        let totals = t.store.usage(user).await.expect("usage");
        assert_eq!((totals.usage, totals.calls), (usage, 10));
        let days = t
            .store
            .daily_usage(user, june, june)
            .await
            .expect("daily usage");
        assert_eq!(
            days,
            [DailyUsage {
                day: june,
                usage,
                calls: 10
            }]
        );
    }
    assert_eq!(
        t.store.usage(&carol).await.expect("usage"),
        Default::default()
    );
    assert!(t
        .store
        .daily_usage(&carol, june, june)
        .await
        .expect("daily usage")
        .is_empty());
}

/// Prompt-cache read and write tokens are kept on a stored reply, and the ledger sums
/// them per day and in the totals like the other counts.
pub async fn cache_token_figures_round_trip_on_replies_and_in_the_ledger(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    let with_cache = Usage::new(100, 20).with_cache(4000, 0);
    let writes_cache = Usage::new(5, 6).with_cache(0, 900);
    let stored = append(&*t.store, &user, chat.id, exchange("q", "a", with_cache)).await;
    assert_eq!(stored[1].usage, Some(with_cache));
    let read = t
        .store
        .get_message(&user, stored[1].id)
        .await
        .expect("get the reply");
    assert_eq!(read.usage, Some(with_cache));
    let second = append(
        &*t.store,
        &user,
        chat.id,
        exchange("q2", "a2", writes_cache),
    )
    .await;
    let recent = t
        .store
        .recent_messages(&user, chat.id, 4)
        .await
        .expect("recent");
    assert_eq!(recent[1].usage, Some(with_cache));
    assert_eq!(recent[3].usage, Some(writes_cache));
    assert_eq!(second[1].usage, Some(writes_cache));

    let monday = at(2025, 9, 1, 10, 0, 0);
    let tuesday = at(2025, 9, 2, 23, 59, 59);
    for (when, usage) in [
        (monday, with_cache),
        (monday, writes_cache),
        (tuesday, Usage::new(1, 1).with_cache(7, 3)),
        (tuesday, Usage::new(2, 2)),
    ] {
        t.store
            .record_usage(&user, when, usage)
            .await
            .expect("record");
    }
    let days = t
        .store
        .daily_usage(&user, day(2025, 9, 1), day(2025, 9, 30))
        .await
        .expect("daily usage");
    let monday_sum = with_cache.saturating_add(writes_cache);
    let tuesday_sum = Usage::new(1, 1)
        .with_cache(7, 3)
        .saturating_add(Usage::new(2, 2));
    assert_eq!(
        (monday_sum.cache_read_tokens, monday_sum.cache_write_tokens),
        (4000, 900)
    );
    assert_eq!(
        days,
        [
            DailyUsage {
                day: day(2025, 9, 1),
                usage: monday_sum,
                calls: 2
            },
            DailyUsage {
                day: day(2025, 9, 2),
                usage: tuesday_sum,
                calls: 2
            },
        ]
    );
    let totals = t.store.usage(&user).await.expect("usage");
    assert_eq!(totals.usage, monday_sum.saturating_add(tuesday_sum));
    assert_eq!(
        (
            totals.usage.cache_read_tokens,
            totals.usage.cache_write_tokens
        ),
        (4007, 903)
    );
    assert_eq!(totals.calls, 4);
}
