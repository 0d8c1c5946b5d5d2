//! The rest of Converse through `ChatService` on `BedrockChatModel` and `FakeBedrock`
//! (through the real AWS SDK): service tier, latency-optimised inference, model-specific
//! fields and request metadata reach Bedrock; a conversation that does not fit the context
//! window is cut and sent again once; guardrail and content-filter stops are the reply's
//! own stop reasons.
#![cfg(all(feature = "bedrock", feature = "testkit"))]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use bedrock_chat_core::bedrock::BedrockConfig;
use bedrock_chat_core::testkit::{FakeBedrock, FakeReply};
use bedrock_chat_core::{
    ChatError, ChatPolicy, ChatReply, ChatService, HistoryStore, InferenceConfig, ModelError,
    SendRequest, ServiceTier, StopReason, UserId,
};
use bedrock_chat_store::InMemoryHistoryStore;
use futures::StreamExt;
use serde_json::{json, Value};

const NOVA: &str = "amazon.nova-lite-v1:0";
const CLAUDE: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";

fn alice() -> UserId {
    UserId::new("alice").unwrap()
}

async fn service(
    fake: &FakeBedrock,
    model: &str,
    policy: ChatPolicy,
) -> (ChatService, InMemoryHistoryStore) {
    let store = InMemoryHistoryStore::new();
    let model = fake.chat_model(
        BedrockConfig::new(model).with_backoff(Duration::from_millis(5), Duration::from_millis(20)),
    );
    let service = ChatService::builder(Arc::new(model), Arc::new(store.clone()))
        .policy(policy)
        .build();
    (service, store)
}

fn last_body(fake: &FakeBedrock) -> Value {
    fake.last_request().unwrap().body
}

#[tokio::test]
async fn tier_latency_fields_and_metadata_reach_bedrock() {
    let fake = FakeBedrock::start().await.unwrap();
    let inference = InferenceConfig::new()
        .with_service_tier(ServiceTier::Flex)
        .with_latency_optimized(true)
        .with_additional_fields(json!({"top_k": 40}));
    let (service, _) = service(&fake, NOVA, ChatPolicy::default().with_inference(inference)).await;

    let reply = service
        .send(SendRequest::new(alice(), "Hello").with_request_id("req-7"))
        .await
        .unwrap();
    let body = last_body(&fake);
    assert_eq!(body["serviceTier"], json!({"type": "flex"}), "{body}");
    assert_eq!(body["performanceConfig"], json!({"latency": "optimized"}));
    assert_eq!(body["additionalModelRequestFields"], json!({"top_k": 40}));
    assert_eq!(
        body["requestMetadata"],
        json!({"user_id": "alice", "chat_id": reply.chat_id.to_string(), "request_id": "req-7"})
    );

    // A send's own settings win over the policy's.
    service
        .send(
            SendRequest::new(alice(), "Again")
                .in_chat(reply.chat_id)
                .with_inference(InferenceConfig::new().with_service_tier(ServiceTier::Priority)),
        )
        .await
        .unwrap();
    assert_eq!(last_body(&fake)["serviceTier"], json!({"type": "priority"}));
}

#[tokio::test]
async fn model_fields_are_merged_with_the_thinking_fields() {
    let fake = FakeBedrock::start().await.unwrap();
    let inference = InferenceConfig::new()
        .with_max_tokens(4096)
        .with_reasoning_budget(2048)
        .with_additional_fields(json!({"top_k": 40}));
    let (service, _) = service(
        &fake,
        CLAUDE,
        ChatPolicy::default().with_inference(inference),
    )
    .await;
    service
        .send(SendRequest::new(alice(), "Why?"))
        .await
        .unwrap();
    assert_eq!(
        last_body(&fake)["additionalModelRequestFields"],
        json!({"top_k": 40, "thinking": {"type": "enabled", "budget_tokens": 2048}})
    );
}

#[tokio::test]
async fn metadata_bedrock_would_refuse_is_made_safe() {
    let fake = FakeBedrock::start().await.unwrap();
    let (service, _) = service(&fake, NOVA, ChatPolicy::default()).await;
    let request_id = format!("id<{}>", "x".repeat(300));
    service
        .send(SendRequest::new(alice(), "Hello").with_request_id(request_id))
        .await
        .unwrap();
    let sent = last_body(&fake)["requestMetadata"]["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sent.chars().count(), 256);
    assert!(sent.starts_with("id_xxx"), "{sent}");
}

#[tokio::test]
async fn model_fields_that_are_not_an_object_are_refused_before_the_call() {
    let fake = FakeBedrock::start().await.unwrap();
    let inference = InferenceConfig::new().with_additional_fields(json!([1, 2]));
    let (service, store) =
        service(&fake, NOVA, ChatPolicy::default().with_inference(inference)).await;
    let error = service
        .send(SendRequest::new(alice(), "Hello"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ChatError::Model(ModelError::InvalidRequest { .. })),
        "{error:?}"
    );
    assert_eq!(fake.request_count(), 0);
    assert_eq!(store.usage(&alice()).await.unwrap().messages, 0);
}

/// A conversation of `turns` exchanges of long messages (500 tokens each: a context of
/// fewer than 2,000 estimated tokens fits every model, and is not retried).
async fn long_conversation(service: &ChatService, turns: usize) -> ChatReply {
    let mut reply = service
        .send(SendRequest::new(alice(), "a".repeat(2000)))
        .await
        .unwrap();
    for _ in 1..turns {
        reply = service
            .send(SendRequest::new(alice(), "b".repeat(2000)).in_chat(reply.chat_id))
            .await
            .unwrap();
    }
    reply
}

fn turns_sent(body: &Value) -> usize {
    body["messages"].as_array().unwrap().len()
}

#[tokio::test]
async fn an_input_too_long_for_the_model_is_sent_again_with_half_the_history() {
    for streamed in [false, true] {
        let fake = FakeBedrock::start().await.unwrap();
        let (service, _) = service(&fake, NOVA, ChatPolicy::default()).await;
        let earlier = long_conversation(&service, 4).await;
        // 9 turns of 500 tokens do not fit; 5 do.
        fake.set_context_window_tokens(3000);
        fake.clear_requests();

        let request = SendRequest::new(alice(), "c".repeat(2000)).in_chat(earlier.chat_id);
        let reply = match streamed {
            false => service.send(request).await.unwrap(),
            true => service
                .send_stream(request)
                .await
                .unwrap()
                .collect_reply()
                .await
                .unwrap(),
        };
        let requests = fake.requests();
        assert_eq!(
            requests.len(),
            2,
            "refused, then sent again (streamed: {streamed})"
        );
        assert_eq!(turns_sent(&requests[0].body), 9);
        assert_eq!(turns_sent(&requests[1].body), 5, "from a question on");
        assert_eq!(requests[1].body["messages"][0]["role"], "user");
        assert_eq!(
            reply.answer.seq, 10,
            "stored as the conversation's next exchange"
        );
    }
}

#[tokio::test]
async fn an_input_that_does_not_fit_even_cut_is_a_context_overflow_and_stores_nothing() {
    let fake = FakeBedrock::start().await.unwrap();
    let (service, store) = service(&fake, NOVA, ChatPolicy::default()).await;
    let earlier = long_conversation(&service, 2).await;
    fake.set_context_window_tokens(50);
    fake.clear_requests();
    let error = service
        .send(SendRequest::new(alice(), "c".repeat(2000)).in_chat(earlier.chat_id))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ChatError::Model(ModelError::ContextOverflow { .. })),
        "{error:?}"
    );
    assert_eq!(fake.request_count(), 2, "one retry, not more");
    let conversation = store
        .get_conversation(&alice(), earlier.chat_id)
        .await
        .unwrap();
    assert_eq!(conversation.message_count, 4);
}

#[tokio::test]
async fn a_reply_cut_off_by_the_context_window_is_made_again_from_a_shorter_history() {
    let fake = FakeBedrock::start().await.unwrap();
    let (service, _) = service(&fake, NOVA, ChatPolicy::default()).await;
    let earlier = long_conversation(&service, 3).await;
    fake.push_reply(
        FakeReply::text("")
            .with_deltas(Vec::<String>::new())
            .with_stop_reason("model_context_window_exceeded")
            .with_usage(700, 0),
    );
    fake.push_reply(FakeReply::text("Short answer.").with_usage(300, 4));
    let events: Vec<_> = service
        .send_stream(SendRequest::new(alice(), "More?").in_chat(earlier.chat_id))
        .await
        .unwrap()
        .collect()
        .await;
    let Some(bedrock_chat_core::StreamEvent::Completed(reply)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(reply.text(), "Short answer.");
    assert_eq!(reply.stop_reason, Some(StopReason::EndTurn));
    assert_eq!(reply.usage.input_tokens, 1000, "both calls are billed");
    let requests = fake.requests();
    let last_two = &requests[requests.len() - 2..];
    assert!(turns_sent(&last_two[1].body) < turns_sent(&last_two[0].body));

    // Text already shown is kept, and the stop reason says why it ends early.
    fake.push_reply(FakeReply::text("Partial").with_stop_reason("model_context_window_exceeded"));
    let kept = service
        .send_stream(SendRequest::new(alice(), "Go on").in_chat(earlier.chat_id))
        .await
        .unwrap()
        .collect_reply()
        .await
        .unwrap();
    assert_eq!(kept.text(), "Partial");
    assert_eq!(
        kept.stop_reason,
        Some(StopReason::ModelContextWindowExceeded)
    );
}

#[tokio::test]
async fn guardrail_and_content_filter_stops_are_their_own_stop_reasons_and_stored() {
    let fake = FakeBedrock::start().await.unwrap();
    let (service, store) = service(&fake, NOVA, ChatPolicy::default()).await;
    for (wire, expected) in [
        ("guardrail_intervened", StopReason::GuardrailIntervened),
        ("content_filtered", StopReason::ContentFiltered),
    ] {
        fake.push_reply(FakeReply::text("Sorry, I can't help with that.").with_stop_reason(wire));
        let reply = service
            .send(SendRequest::new(alice(), "Something"))
            .await
            .unwrap();
        assert_eq!(reply.stop_reason, Some(expected.clone()));
        let stored = store
            .get_message(&alice(), reply.response_session_id)
            .await
            .unwrap();
        assert_eq!(stored.metadata["stop_reason"], wire);
    }
}

#[tokio::test]
async fn a_small_context_that_does_not_fit_is_not_retried() {
    // Under 2,000 estimated tokens a context fits every Bedrock model: a refusal then is
    // not about its length alone, and the send keeps no copy to retry with.
    let fake = FakeBedrock::start().await.unwrap();
    let (service, _) = service(&fake, NOVA, ChatPolicy::default()).await;
    let first = service
        .send(SendRequest::new(alice(), "a".repeat(400)))
        .await
        .unwrap();
    fake.set_context_window_tokens(50);
    fake.clear_requests();
    let error = service
        .send(SendRequest::new(alice(), "b".repeat(400)).in_chat(first.chat_id))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ChatError::Model(ModelError::ContextOverflow { .. })),
        "{error:?}"
    );
    assert_eq!(fake.request_count(), 1);
}
