//! The input tokens billed over a 20-turn conversation, with and without prompt caching:
//! `ChatService` on `BedrockChatModel` against `FakeBedrock` (which accounts cache points as
//! Bedrock reports them: the longest prefix seen before is read from the cache, the rest up
//! to the last cache point written, with Claude's 1,024-token minimum), the in-memory store
//! and the default context window (20 messages, 12,000 estimated tokens). The figures are
//! token counts, deterministic for a given script, so one run is the measurement.
//!
//! Run with `cargo run --release -p bedrock-chat-benches --example prompt_cache`.

use std::sync::Arc;

use bedrock_chat_core::bedrock::BedrockConfig;
use bedrock_chat_core::testkit::{FakeBedrock, FakeReply};
use bedrock_chat_core::{ChatPolicy, ChatService, SendRequest, Usage, UserId};
use bedrock_chat_store::InMemoryHistoryStore;

const MODEL: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";
const TURNS: usize = 20;

/// A system prompt of about 2,000 tokens, as a product's instructions and examples are.
fn system_prompt() -> String {
    let rule = "Answer as a careful support engineer for the Acme billing product: cite the \
                relevant setting, give the exact steps, and say what to check afterwards. ";
    rule.repeat(50)
}

/// A question of about 40 tokens and an answer of about 250.
fn turn(i: usize) -> (String, String) {
    let question = format!(
        "Question {i}: my invoice for period {i} shows a proration line I do not understand; \
         what does it mean and how do I change it?"
    );
    let answer = format!(
        "For period {i}, the proration line is the difference between the old and the new \
         plan for the days left in the cycle. "
    )
    .repeat(8);
    (question, answer)
}

/// Runs the conversation and returns each turn's usage.
async fn conversation(caching: bool, stride: u32) -> Vec<Usage> {
    let fake = FakeBedrock::start().await.expect("the fake starts");
    let model = fake.chat_model(BedrockConfig::new(MODEL));
    let service = ChatService::builder(Arc::new(model), Arc::new(InMemoryHistoryStore::new()))
        .policy(
            ChatPolicy::default()
                .with_system_prompt(system_prompt())
                .with_prompt_caching(caching)
                .with_context_stride(stride),
        )
        .build();
    let user = UserId::new("bench").expect("a user id");
    let mut chat_id = None;
    let mut usages = Vec::with_capacity(TURNS);
    for i in 1..=TURNS {
        let (question, answer) = turn(i);
        fake.push_reply(FakeReply::text(answer));
        let mut request = SendRequest::new(user.clone(), question);
        if let Some(id) = chat_id {
            request = request.in_chat(id);
        }
        let reply = service.send(request).await.expect("the send succeeds");
        chat_id = Some(reply.chat_id);
        usages.push(reply.usage);
    }
    usages
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let with = runtime.block_on(conversation(true, 1));
    let strided = runtime.block_on(conversation(true, 10));
    let without = runtime.block_on(conversation(false, 1));

    println!(
        "| turn | cache write | cache read | billed, cached | cache write, stride 10 | \
         cache read, stride 10 | billed, cached, stride 10 | billed, no cache |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, ((w, s), n)) in with.iter().zip(&strided).zip(&without).enumerate() {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            w.cache_write_tokens,
            w.cache_read_tokens,
            billed_input(w),
            s.cache_write_tokens,
            s.cache_read_tokens,
            billed_input(s),
            billed_input(n),
        );
    }
    let total = |usages: &[Usage]| usages.iter().map(billed_input).sum::<u64>();
    let (cached, strided, uncached) = (total(&with), total(&strided), total(&without));
    println!(
        "\nInput tokens billed over {TURNS} turns (cache writes at 1.25x, reads at 0.1x): \
         {cached} with caching ({:.2}x), {strided} with caching and a context stride of 10 \
         ({:.2}x), {uncached} without.",
        cached as f64 / uncached as f64,
        strided as f64 / uncached as f64
    );
}

/// The input side of `budget_tokens`: what the input costs in uncached-token equivalents.
fn billed_input(usage: &Usage) -> u64 {
    usage.budget_tokens() - usage.output_tokens
}
