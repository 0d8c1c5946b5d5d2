//! The Lua scripts, one per operation, each with the shared prelude in front.

use ::redis::Script;

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// Every operation's script, hashed once (EVALSHA; loaded on first use).
pub(super) struct Scripts {
    pub(super) create: Script,
    pub(super) append: Script,
    pub(super) get_conversation: Script,
    pub(super) list_conversations: Script,
    pub(super) update_conversation: Script,
    pub(super) delete_conversation: Script,
    pub(super) messages: Script,
    pub(super) get_message: Script,
    pub(super) update_message: Script,
    pub(super) delete_message: Script,
    pub(super) usage: Script,
    pub(super) record_usage: Script,
    pub(super) daily_usage: Script,
}

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            create: script(include_str!("lua/create.lua")),
            append: script(include_str!("lua/append.lua")),
            get_conversation: script(include_str!("lua/get_conversation.lua")),
            list_conversations: script(include_str!("lua/list_conversations.lua")),
            update_conversation: script(include_str!("lua/update_conversation.lua")),
            delete_conversation: script(include_str!("lua/delete_conversation.lua")),
            messages: script(include_str!("lua/messages.lua")),
            get_message: script(include_str!("lua/get_message.lua")),
            update_message: script(include_str!("lua/update_message.lua")),
            delete_message: script(include_str!("lua/delete_message.lua")),
            usage: script(include_str!("lua/usage.lua")),
            record_usage: script(include_str!("lua/record_usage.lua")),
            daily_usage: script(include_str!("lua/daily_usage.lua")),
        }
    }
}
