//! The history store conformance suite on [`InMemoryHistoryStore`].

use bedrock_chat_core::conformance::store::{StoreCapabilities, StoreUnderTest};
use bedrock_chat_store::InMemoryHistoryStore;

async fn memory() -> StoreUnderTest {
    StoreUnderTest::new(
        InMemoryHistoryStore::new(),
        StoreCapabilities { nul_in_text: true },
    )
}

bedrock_chat_core::history_store_conformance!(memory);
