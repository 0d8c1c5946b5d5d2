#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod backend;
#[cfg(feature = "bedrock")]
pub mod bedrock;
pub mod blob;
pub mod citation;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod context;
pub mod error;
pub mod history_ext;
pub mod ids;
pub mod limiter;
pub mod model;
pub mod offline;
pub mod parts;
mod schema_fill;
pub mod service;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tool;
pub mod types;

#[cfg(feature = "bedrock")]
pub use bedrock::{BedrockChatModel, BedrockConfig};
pub use blob::BlobStore;
pub use clock::{Clock, ManualClock, SystemClock};
pub use context::{CharRatioEstimator, TokenEstimator};
pub use error::{
    ChatError, InvalidInput, InvalidKind, ModelError, RateLimitError, Resource, StoreError,
};
pub use history_ext::{ExportFormat, HistoryStoreExt};
pub use ids::{ChatId, MessageId, UserId};
pub use limiter::{Decision, Quota, RateLimiter};
pub use model::{
    ChatModel, GuardrailConfig, GuardrailStreamMode, InferenceConfig, ModelEvent, ModelMessage,
    ModelRequest, ModelResponse, ModelStream, OutputSchema, RequestMetadata, ServiceTier,
    StopReason,
};
pub use offline::OfflineChatModel;
pub use parts::{Binary, BlobRef, DocumentFormat, ImageFormat, Part};
pub use service::{
    ChatPolicy, ChatReply, ChatService, ChatServiceBuilder, ChatStream, Persona, PersonaReply,
    SendRequest, StatelessReply, StreamEvent, StructuredReply, AUDIT_TARGET,
};
pub use store::{
    AppendRequest, AppendTarget, Appended, Cursor, HistoryStore, ListOptions, MessageOrder,
    MessageRange, Page,
};
#[cfg(feature = "testkit")]
pub use testkit::FakeBedrock;
pub use tool::{Tool, ToolCall, ToolContext, ToolError, ToolSpec};
pub use types::{
    Conversation, ConversationUpdate, DailyUsage, Message, MessageUpdate, Metadata,
    NewConversation, NewMessage, Role, Timestamp, Usage, UsageTotals,
};

#[cfg(any(test, feature = "mock"))]
pub use limiter::MockRateLimiter;
#[cfg(any(test, feature = "mock"))]
pub use model::MockChatModel;
#[cfg(any(test, feature = "mock"))]
pub use store::MockHistoryStore;

/// The workspace README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct WorkspaceReadme;
