//! Time to first token against `FakeBedrock` over loopback, in one run: the raw
//! `aws-sdk-bedrockruntime` ConverseStream (send, then events until the first
//! `contentBlockDelta`), `BedrockChatModel::converse_stream` to its first `TextDelta`, and
//! `ChatService::send_stream` (in-memory store) to its first `Delta`. The differences are
//! what our streaming path adds (budget: under 1 ms). Only the time to the first token is
//! counted; each stream is then read to its end untimed, so connections are reused as in
//! production. Run with `cargo bench -p bedrock-chat-benches --bench ttft`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseStreamOutput, Message,
};
use bedrock_chat_core::bedrock::{BedrockChatModel, BedrockConfig};
use bedrock_chat_core::testkit::{FakeBedrock, FakeReply};
use bedrock_chat_core::{
    ChatModel, ChatService, ModelEvent, ModelMessage, ModelRequest, SendRequest, StreamEvent,
    UserId,
};
use bedrock_chat_store::InMemoryHistoryStore;
use criterion::{criterion_group, criterion_main, Criterion};
use futures::StreamExt;
use tokio::runtime::Runtime;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const QUESTION: &str = "How fast is the first token?";

/// One reply, three deltas, no scripted delay: what is measured is the path, not a model.
fn script(fake: &FakeBedrock) {
    fake.push_reply(FakeReply::text("").with_deltas(["Fast ", "enough ", "here."]));
}

async fn raw_sdk_ttft(fake: &FakeBedrock, client: &aws_sdk_bedrockruntime::Client) -> Duration {
    script(fake);
    let message = Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(QUESTION.into()))
        .build()
        .expect("message");
    let start = Instant::now();
    let mut output = client
        .converse_stream()
        .model_id(MODEL)
        .messages(message)
        .send()
        .await
        .expect("stream starts");
    let mut ttft = None;
    while let Some(event) = output.stream.recv().await.expect("event") {
        if ttft.is_none() && matches!(event, ConverseStreamOutput::ContentBlockDelta(_)) {
            ttft = Some(start.elapsed());
        }
    }
    ttft.expect("a delta arrived")
}

async fn model_ttft(fake: &FakeBedrock, model: &BedrockChatModel) -> Duration {
    script(fake);
    let request = ModelRequest::new([ModelMessage::user(QUESTION)]);
    let start = Instant::now();
    let mut stream = model.converse_stream(request).await.expect("stream starts");
    let mut ttft = None;
    while let Some(event) = stream.next().await {
        if ttft.is_none() && matches!(event, Ok(ModelEvent::TextDelta(_))) {
            ttft = Some(start.elapsed());
        }
    }
    ttft.expect("a delta arrived")
}

async fn service_ttft(fake: &FakeBedrock, service: &ChatService, user: &UserId) -> Duration {
    script(fake);
    let start = Instant::now();
    let mut stream = service
        .send_stream(SendRequest::new(user.clone(), QUESTION))
        .await
        .expect("stream starts");
    let mut ttft = None;
    while let Some(event) = stream.next().await {
        match event {
            StreamEvent::Delta(_) if ttft.is_none() => ttft = Some(start.elapsed()),
            StreamEvent::Completed(_) => break,
            StreamEvent::Failed(error) => panic!("the send failed: {error}"),
            _ => {}
        }
    }
    ttft.expect("a delta arrived")
}

fn bench_ttft(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let fake = rt.block_on(FakeBedrock::start()).expect("fake starts");
    let client = fake.client();
    let model = fake.chat_model(BedrockConfig::new(MODEL));
    let service = ChatService::builder(
        Arc::new(model.clone()),
        Arc::new(InMemoryHistoryStore::new()),
    )
    .build();
    let user = UserId::new("bench-user").expect("user id");

    let mut group = c.benchmark_group("ttft_loopback");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("raw_sdk_converse_stream", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += raw_sdk_ttft(&fake, &client).await;
                }
                total
            })
        })
    });
    group.bench_function("bedrock_chat_model_converse_stream", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += model_ttft(&fake, &model).await;
                }
                total
            })
        })
    });
    group.bench_function("chat_service_send_stream", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += service_ttft(&fake, &service, &user).await;
                }
                total
            })
        })
    });
    group.finish();
    rt.block_on(service.shutdown());
}

// criterion's macro generates an undocumented public fn.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, bench_ttft);
}
criterion_main!(group::benches);
