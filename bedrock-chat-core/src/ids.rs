//! Identifiers: who owns a conversation, which conversation, which message.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::InvalidInput;

/// The longest user id accepted, in bytes.
pub const MAX_USER_ID_LEN: usize = 256;

/// The user a conversation belongs to: a JWT `sub`, an API key's owner, an anonymous
/// browser's cookie id, ...
///
/// Every [`HistoryStore`](crate::HistoryStore) operation is scoped by a `UserId`: a user
/// never reaches another user's data. Any non-empty string of at most
/// [`MAX_USER_ID_LEN`] bytes without control characters is a valid id.
///
/// ```
/// use bedrock_chat_core::UserId;
/// let user = UserId::new("cognito-sub-1234")?;
/// assert_eq!(user.as_str(), "cognito-sub-1234");
/// assert!(UserId::new("").is_err());
/// # Ok::<(), bedrock_chat_core::InvalidInput>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// Checks and wraps a user id.
    ///
    /// # Errors
    /// [`InvalidInput`] when the id is empty, longer than [`MAX_USER_ID_LEN`] bytes or
    /// contains control characters.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidInput> {
        let id = id.into();
        if id.is_empty() {
            return Err(InvalidInput::new("user_id", "must not be empty"));
        }
        if id.len() > MAX_USER_ID_LEN {
            return Err(InvalidInput::new(
                "user_id",
                format!("must be at most {MAX_USER_ID_LEN} bytes"),
            ));
        }
        if id.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "user_id",
                "must not contain control characters",
            ));
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for UserId {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered (UUID v7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| InvalidInput::new($field, "must be a UUID"))
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

uuid_id!(
    /// A conversation's id (seed 000's `chat_id`).
    ///
    /// ```
    /// use bedrock_chat_core::ChatId;
    /// let id: ChatId = "7c5e3c1e-9d8f-4b7a-8f0e-2f0c1d2e3f40".parse()?;
    /// assert!("not-a-uuid".parse::<ChatId>().is_err());
    /// # let _ = id; Ok::<(), bedrock_chat_core::InvalidInput>(())
    /// ```
    ChatId,
    "chat_id"
);

uuid_id!(
    /// A message's id (seed 000's `message_uid` for a user's message and
    /// `response_session_id` for the reply to it). It is the idempotency key of an append.
    MessageId,
    "message_uid"
);

/// The namespace from which reply ids are derived (see [`MessageId::reply_id`]).
const REPLY_NAMESPACE: Uuid = Uuid::from_u128(0x6f0f_3b8e_5a43_4c1d_9e51_0b7c_2d7a_51e9);

impl MessageId {
    /// The id of the assistant reply to this user message.
    ///
    /// It is derived (UUID v5) rather than random so that a retried send with the same
    /// `message_uid` finds the reply stored the first time, and so that two racing
    /// retries can never store two replies.
    pub fn reply_id(&self) -> MessageId {
        MessageId(Uuid::new_v5(&REPLY_NAMESPACE, self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_id_is_stable_and_distinct() {
        let id = MessageId::new();
        assert_eq!(id.reply_id(), id.reply_id());
        assert_ne!(id.reply_id(), id);
        assert_ne!(MessageId::new().reply_id(), id.reply_id());
    }

    #[test]
    fn user_id_rejects_control_characters_and_long_ids() {
        assert!(UserId::new("a\nb").is_err());
        assert!(UserId::new("x".repeat(MAX_USER_ID_LEN + 1)).is_err());
        assert!(UserId::new("x".repeat(MAX_USER_ID_LEN)).is_ok());
        let err = "nope".parse::<MessageId>().unwrap_err();
        assert_eq!(err.field, "message_uid");
    }
}
