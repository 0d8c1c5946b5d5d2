//! Appends to one conversation from one store (and its clones) take turns locally: they
//! would only race each other for the same sequence numbers, each loser spending a
//! cancelled transaction's write capacity and a retry. Races between processes are
//! still settled by the transaction's condition.

use std::sync::{Arc, Mutex, PoisonError};

use bedrock_chat_core::ChatId;
use hashbrown::HashMap;
use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

/// One turn lock per conversation with appends in flight.
#[derive(Debug, Default)]
pub(super) struct AppendQueues {
    turns: Mutex<HashMap<ChatId, Arc<TurnLock<()>>>>,
}

/// This append's turn; the conversation's entry goes when the last waiter is done.
pub(super) struct Turn {
    queues: Arc<AppendQueues>,
    chat: ChatId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl AppendQueues {
    /// Waits for the turn to append to `chat`.
    pub(super) async fn turn(self: &Arc<Self>, chat: ChatId) -> Turn {
        let lock = {
            let mut turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(turns.entry(chat).or_default())
        };
        let mut turn = Turn {
            queues: Arc::clone(self),
            chat,
            guard: None,
        };
        turn.guard = Some(lock.lock_owned().await);
        turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // Release first, so a waiter can go; then forget the lock if no one else holds or
        // waits for it (its clones are only made under the map's mutex).
        self.guard = None;
        let mut turns = self
            .queues
            .turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if turns
            .get(&self.chat)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            turns.remove(&self.chat);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_are_one_at_a_time_and_leave_nothing_behind() {
        let queues = Arc::new(AppendQueues::default());
        let chat = ChatId::new();
        let first = queues.turn(chat).await;
        let waiting = {
            let queues = Arc::clone(&queues);
            tokio::spawn(async move { queues.turn(chat).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        let second = waiting.await.expect("second turn");
        assert_eq!(queues.turns.lock().map(|t| t.len()).unwrap_or(9), 1);
        drop(second);
        assert_eq!(queues.turns.lock().map(|t| t.len()).unwrap_or(9), 0);
    }
}
