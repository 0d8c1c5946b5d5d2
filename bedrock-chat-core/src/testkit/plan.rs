//! From a request and a script to the answer to give, whatever the wire format: the text
//! or tool call, its deltas, stop reason, usage and timing.

use std::time::Duration;

use serde_json::{json, Value};

use super::script::{FakeContent, FakeReply, Timing};
use crate::schema_fill::{fill, fill_tool_input};
use crate::types::Usage;

/// What a model call asks, read from a Converse or an Anthropic body.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ask {
    /// The text of the last user message (what the echo answers).
    pub(crate) last_user_text: String,
    /// Characters of input: system prompt and every message.
    pub(crate) input_chars: usize,
    /// The most tokens the answer may have.
    pub(crate) max_tokens: Option<u64>,
    /// The tool the request forces (structured output).
    pub(crate) forced_tool: Option<String>,
    /// That tool's input JSON schema, when the request gave one.
    pub(crate) forced_tool_schema: Option<Value>,
    /// Tokens of the images and documents, by Bedrock's published estimates.
    pub(crate) attachment_tokens: u64,
    /// The request's cache points, in prompt order (system first).
    pub(crate) cache_points: Vec<CachePoint>,
    /// The reasoning budget, when the request turns extended thinking on.
    pub(crate) reasoning_budget: Option<u64>,
    /// The tools the request offers: names and input schemas.
    pub(crate) offered_tools: Vec<(String, Value)>,
    /// The tool results the last user turn holds, each as its text.
    pub(crate) tool_results: Vec<String>,
    /// A native structured output's name and JSON schema (`outputConfig`).
    pub(crate) output_schema: Option<(String, Value)>,
    /// With citations on: the passage of the newest cited text document to quote.
    pub(crate) citation: Option<Cited>,
}

/// A passage of a document the answer quotes, and where it is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Cited {
    /// The document's index among the request's documents.
    pub(crate) document_index: u32,
    /// The document's name.
    pub(crate) title: String,
    /// The quoted words, and their first and after-last character in the document.
    pub(crate) quote: String,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// A cache point of a request: the prefix before it, hashed, and its tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CachePoint {
    /// SHA-256 of the prefix's blocks, lowercase hex.
    pub(crate) key: String,
    /// The prefix's input tokens.
    pub(crate) tokens: u64,
    /// The keys and tokens of the block boundaries just before it, newest first: a prefix
    /// cached there by an earlier request is a hit too, as Bedrock checks them.
    pub(crate) lookback: Vec<(String, u64)>,
}

/// The fake's prompt cache: the prefixes it has seen, per model, as Bedrock keeps them
/// (without expiry: a test is shorter than Bedrock's five minutes).
#[derive(Debug)]
pub(crate) struct PromptCache {
    /// A cache point's prefix shorter than this is not cached (Claude's minimum is 1,024
    /// tokens).
    pub(crate) min_tokens: u64,
    seen: std::collections::HashSet<(String, String)>,
}

impl PromptCache {
    pub(crate) fn new(min_tokens: u64) -> Self {
        Self {
            min_tokens,
            seen: std::collections::HashSet::new(),
        }
    }

    /// `usage` with the request's cached prefix accounted as Bedrock reports it: the longest
    /// prefix seen before is read from the cache, the rest up to the last cache point is
    /// written to it, and `input_tokens` keeps only what follows the last cache point.
    pub(crate) fn account(&mut self, model_id: &str, points: &[CachePoint], usage: Usage) -> Usage {
        let eligible: Vec<&CachePoint> = points
            .iter()
            .filter(|p| p.tokens >= self.min_tokens)
            .collect();
        let Some(last) = eligible.last() else {
            return usage;
        };
        let seen = |key: &String| self.seen.contains(&(model_id.to_owned(), key.clone()));
        let read = eligible
            .iter()
            .flat_map(|p| {
                std::iter::once((&p.key, p.tokens)).chain(p.lookback.iter().map(|(k, t)| (k, *t)))
            })
            .filter(|(key, tokens)| *tokens >= self.min_tokens && seen(key))
            .map(|(_, tokens)| tokens)
            .max()
            .unwrap_or(0);
        let write = last.tokens.saturating_sub(read);
        for point in &eligible {
            self.seen.insert((model_id.to_owned(), point.key.clone()));
        }
        let input = usage.input_tokens.saturating_sub(last.tokens).max(1);
        Usage::new(input, usage.output_tokens).with_cache(read, write)
    }
}

impl Ask {
    /// The first offered tool whose name the last user message mentions (`current_time`
    /// as "current time" too).
    pub(crate) fn named_tool(&self) -> Option<(&str, &Value)> {
        self.offered_tools
            .iter()
            .find(|(name, _)| crate::tool::names_tool(&self.last_user_text, name))
            .map(|(name, schema)| (name.as_str(), schema))
    }

    /// The input tokens of the whole request.
    pub(crate) fn input_tokens(&self) -> u64 {
        tokens_for(self.input_chars).saturating_add(self.attachment_tokens)
    }
}

/// Tokens for `chars` characters, at 4 characters a token (rounded up).
pub(crate) fn tokens_for(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// What to answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Content {
    Text {
        deltas: Vec<String>,
    },
    ToolUse {
        name: String,
        input: Value,
        fragments: Vec<String>,
    },
}

/// Reasoning before the answer: its pieces and its signature.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reasoning {
    pub(crate) deltas: Vec<String>,
    pub(crate) signature: String,
}

impl Reasoning {
    /// `text` a word per delta, signed.
    fn of(text: &str) -> Self {
        Self {
            deltas: words(text),
            signature: signature_of(text),
        }
    }

    /// The whole reasoning text.
    pub(crate) fn text(&self) -> String {
        self.deltas.concat()
    }
}

/// The fake's signature of reasoning `text`: deterministic, opaque, base64 as Bedrock's.
pub(crate) fn signature_of(text: &str) -> String {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("FakeBedrock reasoning\n{text}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// The whole answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    /// Encrypted reasoning before everything else (Converse only).
    pub(crate) redacted_reasoning: Option<Vec<u8>>,
    /// Reasoning before the content (Converse only).
    pub(crate) reasoning: Option<Reasoning>,
    pub(crate) content: Content,
    pub(crate) stop_reason: String,
    pub(crate) usage: Usage,
    pub(crate) time_to_first_token: Duration,
    pub(crate) delta_delay: Duration,
    /// The passage the answer quotes, and the delta its quote starts at: the text deltas
    /// from there on are the cited words.
    pub(crate) citation: Option<(usize, Cited)>,
}

/// `text` a word at a time (each piece keeps its trailing space).
fn words(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_owned).collect()
}

/// A tool input's JSON text in pieces of at most 16 characters, as models stream it.
fn fragments(input: &Value) -> Vec<String> {
    let text = input.to_string();
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(16).map(|c| c.iter().collect()).collect()
}

impl Plan {
    /// The default answer: the last user message, word by word; with a forced tool, a call
    /// of it with input generated to validate against the tool's input schema (strings made
    /// from the property names and that message), as a model's structured output would.
    /// With a native structured output, that JSON as text. With offered tools, a call of
    /// the first one the message names (input made the same
    /// way), and after tool results, "Tool results: ..." quoting them. A `max_tokens` limit
    /// cuts the echo (at 4 characters a token) and makes the stop reason `max_tokens`.
    pub(crate) fn echo(ask: &Ask, timing: Timing) -> Self {
        let reply = match &ask.forced_tool {
            Some(name) => {
                let object = json!({ "type": "object" });
                let schema = ask.forced_tool_schema.as_ref().unwrap_or(&object);
                FakeReply::tool_use(fill(schema, name, &ask.last_user_text))
            }
            None if ask.output_schema.is_some() => {
                let (name, schema) = ask.output_schema.as_ref().expect("checked just above");
                FakeReply::text(fill(schema, name, &ask.last_user_text).to_string())
            }
            None if !ask.tool_results.is_empty() => {
                FakeReply::text(format!("Tool results: {}", ask.tool_results.join("; ")))
            }
            None if ask.named_tool().is_some() => {
                let (name, schema) = ask.named_tool().expect("checked just above");
                FakeReply::tool_use_named(name, fill_tool_input(schema, name, &ask.last_user_text))
            }
            None => {
                let limit = ask
                    .max_tokens
                    .map(|t| usize::try_from(t.saturating_mul(4)).unwrap_or(usize::MAX));
                match limit {
                    Some(limit) if ask.last_user_text.chars().count() > limit => {
                        let cut: String = ask.last_user_text.chars().take(limit).collect();
                        FakeReply::text(cut).with_stop_reason("max_tokens")
                    }
                    _ => {
                        let plan = Self::from_reply(
                            FakeReply::text(ask.last_user_text.clone()),
                            ask,
                            timing,
                        );
                        return match &ask.citation {
                            Some(cited) => plan.quoting(cited),
                            None => plan,
                        };
                    }
                }
            }
        };
        Self::from_reply(reply, ask, timing)
    }

    /// The echo with the passage quoted after it: "The document “NAME” says: QUOTE", the
    /// quote its own delta, cited.
    fn quoting(mut self, cited: &Cited) -> Self {
        let Content::Text { deltas } = &mut self.content else {
            return self;
        };
        let lead = format!("\n\nThe document “{}” says: ", cited.title);
        let added = lead.chars().count() + cited.quote.chars().count();
        deltas.extend(words(&lead));
        let at = deltas.len();
        deltas.push(cited.quote.clone());
        self.usage = Usage::new(
            self.usage.input_tokens,
            self.usage.output_tokens + tokens_for(added),
        );
        self.citation = Some((at, cited.clone()));
        self
    }

    /// A scripted answer to `ask`. It reasons first when the reply scripts reasoning, or
    /// else when the request turns thinking on ("Thinking about: <last user text>").
    pub(crate) fn from_reply(reply: FakeReply, ask: &Ask, timing: Timing) -> Self {
        let reasoning = reply
            .reasoning
            .clone()
            .or_else(|| {
                ask.reasoning_budget
                    .map(|_| format!("Thinking about: {}", ask.last_user_text))
            })
            .map(|text| Reasoning::of(&text));
        let reasoning_chars = reasoning.as_ref().map_or(0, |r| r.text().chars().count());
        let (content, default_stop, output_chars) = match reply.content {
            FakeContent::Text(text) => {
                let deltas = reply.deltas.unwrap_or_else(|| words(&text));
                (Content::Text { deltas }, "end_turn", text.chars().count())
            }
            FakeContent::ToolUse { name, input } => {
                let name = name
                    .or_else(|| ask.forced_tool.clone())
                    .unwrap_or_else(|| "tool".to_owned());
                let fragments = reply.deltas.unwrap_or_else(|| fragments(&input));
                let chars = input.to_string().chars().count();
                (
                    Content::ToolUse {
                        name,
                        input,
                        fragments,
                    },
                    "tool_use",
                    chars,
                )
            }
        };
        Self {
            redacted_reasoning: reply.redacted_reasoning,
            reasoning,
            content,
            stop_reason: reply.stop_reason.unwrap_or_else(|| default_stop.to_owned()),
            usage: reply.usage.unwrap_or_else(|| {
                Usage::new(
                    ask.input_tokens().max(1),
                    tokens_for(output_chars + reasoning_chars),
                )
            }),
            time_to_first_token: reply
                .time_to_first_token
                .unwrap_or(timing.time_to_first_token),
            delta_delay: reply.delta_delay.unwrap_or(timing.delta_delay),
            citation: None,
        }
    }

    /// The answer's text (for a tool call, its input's JSON).
    pub(crate) fn text(&self) -> String {
        match &self.content {
            Content::Text { deltas } => deltas.concat(),
            Content::ToolUse { input, .. } => input.to_string(),
        }
    }

    /// The pieces a stream sends.
    pub(crate) fn deltas(&self) -> &[String] {
        match &self.content {
            Content::Text { deltas } => deltas,
            Content::ToolUse { fragments, .. } => fragments,
        }
    }

    /// How long generating the whole answer takes.
    pub(crate) fn duration(&self) -> Duration {
        let reasoning = self.reasoning.as_ref().map_or(0, |r| r.deltas.len());
        let pieces = self.deltas().len() + reasoning;
        let gaps = u32::try_from(pieces.saturating_sub(1)).unwrap_or(u32::MAX);
        self.time_to_first_token
            .saturating_add(self.delta_delay.saturating_mul(gaps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_streams_the_question_word_by_word() {
        let ask = Ask {
            last_user_text: "one two three".into(),
            input_chars: 13,
            ..Default::default()
        };
        let plan = Plan::echo(&ask, Timing::default());
        assert_eq!(plan.deltas(), ["one ", "two ", "three"]);
        assert_eq!(plan.text(), "one two three");
        assert_eq!(plan.stop_reason, "end_turn");
        assert_eq!(plan.usage, Usage::new(4, 4));
    }

    #[test]
    fn max_tokens_cuts_the_echo() {
        let ask = Ask {
            last_user_text: "a".repeat(30),
            max_tokens: Some(2),
            ..Default::default()
        };
        let plan = Plan::echo(&ask, Timing::default());
        assert_eq!(plan.text().len(), 8);
        assert_eq!(plan.stop_reason, "max_tokens");
    }

    #[test]
    fn a_forced_tool_is_called_with_input_that_fits_its_schema() {
        let ask = Ask {
            last_user_text: "a grumpy wizard".into(),
            forced_tool: Some("persona".into()),
            forced_tool_schema: Some(json!({
                "type": "object",
                "properties": {"name": {"type": "string"}, "level": {"type": "integer"}},
                "required": ["name", "level"]
            })),
            ..Default::default()
        };
        let plan = Plan::echo(&ask, Timing::default());
        match &plan.content {
            Content::ToolUse { name, input, .. } => {
                assert_eq!(name, "persona");
                assert_eq!(input, &json!({"name": "Grumpy Wizard", "level": 0}));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(plan.stop_reason, "tool_use");
    }

    #[test]
    fn a_tool_reply_calls_the_forced_tool() {
        let ask = Ask {
            forced_tool: Some("persona".into()),
            ..Default::default()
        };
        let plan = Plan::from_reply(
            FakeReply::tool_use(json!({"name": "a fairly long name"})),
            &ask,
            Timing::default(),
        );
        match &plan.content {
            Content::ToolUse {
                name, fragments, ..
            } => {
                assert_eq!(name, "persona");
                assert!(fragments.len() > 1);
                assert_eq!(fragments.concat(), plan.text());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(plan.stop_reason, "tool_use");
    }
}
