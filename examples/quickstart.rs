//! A real conversation on the in-memory store and rate limiter: two turns (one streamed),
//! then the stored history. It runs on the offline model, needing no AWS account or
//! service, unless `BEDROCK_MODEL_ID` names a Bedrock model: then it asks Bedrock, with
//! credentials and region from the usual AWS environment. Run it with
//! `cargo run --example quickstart` (or `BEDROCK_MODEL_ID=amazon.nova-micro-v1:0 cargo run --example quickstart`).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bedrock_chat_core::{
    BedrockChatModel, BedrockConfig, ChatModel, ChatPolicy, ChatService, HistoryStore, ListOptions,
    OfflineChatModel, Quota, SendRequest, StreamEvent, UserId,
};
use bedrock_chat_ratelimit::InMemoryRateLimiter;
use bedrock_chat_store::InMemoryHistoryStore;
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    let model: Arc<dyn ChatModel> = match std::env::var("BEDROCK_MODEL_ID") {
        Ok(model_id) if !model_id.is_empty() => {
            Arc::new(BedrockChatModel::load(BedrockConfig::new(model_id)).await)
        }
        _ => Arc::new(
            OfflineChatModel::new()
                .with_words_per_delta(2)
                .with_delta_delay(Duration::from_millis(30)),
        ),
    };
    let store = Arc::new(InMemoryHistoryStore::new());
    let service = ChatService::builder(model, store.clone())
        .request_limiter(Arc::new(InMemoryRateLimiter::new(Quota::per_minute(10)?)))
        .token_budget(Arc::new(InMemoryRateLimiter::new(Quota::per_day(100_000)?)))
        .policy(ChatPolicy::default().with_system_prompt("You are a helpful assistant."))
        .build();
    let model_id = service.model().model_id();
    if model_id == bedrock_chat_core::offline::OFFLINE_MODEL_ID {
        println!("model: {model_id} (no BEDROCK_MODEL_ID set: the offline model answers)\n");
    } else {
        println!("model: {model_id} on Amazon Bedrock\n");
    }

    let user = UserId::new("quickstart-user")?;
    let question = "What can bedrock-chat do?";
    println!("you> {question}");
    let first = service
        .send(SendRequest::new(user.clone(), question))
        .await?;
    println!("bot> {}\n", first.text());

    let question = "And can it stream?";
    println!("you> {question}");
    print!("bot> ");
    let mut stream = service
        .send_stream(SendRequest::new(user.clone(), question).in_chat(first.chat_id))
        .await?;
    while let Some(event) = stream.next().await {
        match event {
            StreamEvent::Delta(text) => {
                print!("{text}");
                std::io::stdout().flush()?;
            }
            StreamEvent::Completed(reply) => println!(
                "\n     [{} input + {} output tokens, {} requests left this minute]\n",
                reply.usage.input_tokens,
                reply.usage.output_tokens,
                reply.rate_limit.map_or(0, |d| d.remaining),
            ),
            StreamEvent::Failed(error) => return Err(error.into()),
            _ => {}
        }
    }

    let chat = store.get_conversation(&user, first.chat_id).await?;
    println!(
        "conversation {} \"{}\": {} messages",
        chat.id, chat.title, chat.message_count
    );
    let history = store
        .list_messages(&user, chat.id, ListOptions::first(50))
        .await?;
    for message in history.items {
        let preview: String = message.content.chars().take(60).collect();
        println!("  #{} {:<9} {preview}…", message.seq, message.role.as_str());
    }
    let usage = store.usage(&user).await?;
    println!("total tokens used: {}", usage.usage.total_tokens);
    Ok(())
}
