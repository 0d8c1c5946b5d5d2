//! Messages made of parts (attachments, tool calls and results, reasoning, cited text)
//! round-trip exactly; plain-text messages stay plain.

use serde_json::json;

use super::{all_messages, append, conversation, MakeStore};
use crate::citation::{Citation, CitationLocation};
use crate::conformance::random_user;
use crate::parts::{Binary, BlobRef, DocumentFormat, ImageFormat, Part};
use crate::store::{AppendRequest, ListOptions};
use crate::{Message, MessageUpdate, NewMessage, Usage};

/// One of every kind of part, with bytes and JSON that a careless encoding would change.
fn every_part() -> Vec<Part> {
    let mut image = b"\x89PNG\r\n\x1a\n".to_vec();
    image.extend((0..=255u8).chain((0..=255u8).rev()));
    vec![
        Part::text("What is in these? 🦀 'quoted' \"double\" \\ $1"),
        Part::image(ImageFormat::Png, image),
        Part::document(
            DocumentFormat::Pdf,
            "report (final) ünïcödé",
            b"%PDF-1.7\n\x00\x01\xfe\xff%%EOF".to_vec(),
        ),
        Part::Image {
            format: ImageFormat::Webp,
            source: Binary::Blob(BlobRef {
                key: "attachments/conformance/0123456789abcdef".into(),
                size: 4_000_000,
                sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            }),
        },
        Part::text("and a second text part"),
    ]
}

/// A reply with reasoning and a tool round.
fn reply_parts() -> Vec<Part> {
    vec![
        Part::Reasoning {
            text: "The user wants the weather; call the tool.\n\tStep 2…".into(),
            signature: Some("c2lnbmF0dXJlLWJ5dGVz+/==".into()),
        },
        Part::RedactedReasoning {
            data: Binary::Bytes((0..=255u8).collect::<Vec<u8>>().into()),
        },
        Part::ToolUse {
            id: "tooluse_01".into(),
            name: "weather".into(),
            input: json!({
                "city": "Zürich",
                "days": [1, 2, 3],
                "options": {"units": "metric", "nested": {"deep": [null, true, false, {}, []]}},
                "big": u64::MAX,
                "negative": i64::MIN,
                "fraction": 1.5,
                "empty": "",
            }),
        },
        Part::ToolResult {
            tool_use_id: "tooluse_01".into(),
            output: json!({"error": "the weather service timed out", "retry": 2}),
            is_error: true,
        },
        Part::ToolResult {
            tool_use_id: "tooluse_00".into(),
            output: json!("a plain text result"),
            is_error: false,
        },
        Part::cited_text(
            "It is sunny, says the forecast.",
            vec![Citation::new(17, 30, "Sunny all day.\n").with_title("forecast.md")],
        ),
    ]
}

/// An answer that is one text part citing documents: characters, pages and chunks,
/// unicode in the text and quotes.
fn cited_answer_parts() -> Vec<Part> {
    let text = "Leave: 20 days 🦀 — “ünïcödé” policy.";
    vec![Part::cited_text(
        text,
        vec![
            Citation::new(7, 14, "Employees get 20 days.")
                .with_title("policy \"v2\"")
                .with_location(CitationLocation::Characters {
                    document_index: 0,
                    start: 13,
                    end: 35,
                }),
            Citation::new(15, 16, "🦀 'crab'").with_location(CitationLocation::Pages {
                document_index: 1,
                start: 3,
                end: 4,
            }),
            Citation::new(0, 37, "").with_location(CitationLocation::Chunks {
                document_index: 2,
                start: 0,
                end: 2,
            }),
        ],
    )]
}

fn with_parts(message: NewMessage, parts: Vec<Part>) -> NewMessage {
    let message = message.with_parts(parts.clone());
    assert_eq!(message.parts, parts, "the case's parts are kept as parts");
    message
}

#[track_caller]
fn assert_same_content(read: &Message, sent: &NewMessage, path: &str) {
    assert_eq!(read.id, sent.id, "{path}: id");
    assert!(
        read.parts == sent.parts,
        "{path}: parts must come back exactly"
    );
    assert_eq!(read.content, sent.content, "{path}: content");
    assert_eq!(read.usage, sent.usage, "{path}: usage");
}

/// A message made of every kind of part (bytes with all 256 values, a document, a blob
/// reference, a tool call with nested JSON, an error result, reasoning with a signature,
/// redacted reasoning) comes back exactly from the append, its replay, and every read.
pub async fn parts_round_trip_exactly_through_every_read(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    let question = with_parts(NewMessage::user(""), every_part());
    let answer = with_parts(NewMessage::assistant(""), reply_parts())
        .replying_to(question.id)
        .with_model("conformance-model")
        .with_usage(Usage::new(1200, 80).with_cache(3000, 450));
    let second = NewMessage::user("and the policy?");
    let cited = with_parts(NewMessage::assistant(""), cited_answer_parts())
        .replying_to(second.id)
        .with_model("conformance-model");
    let sent = vec![question, answer, second, cited];

    let first = t
        .store
        .append(&user, AppendRequest::existing(chat.id, sent.clone()))
        .await
        .expect("append");
    assert!(!first.already_stored);
    let replay = t
        .store
        .append(&user, AppendRequest::existing(chat.id, sent.clone()))
        .await
        .expect("replay");
    assert!(replay.already_stored);
    for (path, messages) in [("append", &first.messages), ("replay", &replay.messages)] {
        assert_eq!(messages.len(), sent.len(), "{path}");
        for (read, sent) in messages.iter().zip(&sent) {
            assert_same_content(read, sent, path);
        }
    }
    assert_eq!(first.messages, replay.messages);

    for (read, sent) in all_messages(&*t.store, &user, chat.id)
        .await
        .iter()
        .zip(&sent)
    {
        assert_same_content(read, sent, "list_messages");
    }
    let newest_first = t
        .store
        .list_messages(&user, chat.id, ListOptions::latest(10))
        .await
        .expect("list newest first")
        .items;
    for (read, sent) in newest_first.iter().rev().zip(&sent) {
        assert_same_content(read, sent, "list_messages newest first");
    }
    let recent = t
        .store
        .recent_messages(&user, chat.id, 10)
        .await
        .expect("recent");
    assert_eq!(recent.len(), sent.len());
    for (read, sent) in recent.iter().zip(&sent) {
        assert_same_content(read, sent, "recent_messages");
    }
    for sent in &sent {
        let read = t.store.get_message(&user, sent.id).await.expect("get");
        assert_same_content(&read, sent, "get_message");
    }
    assert_eq!(recent, first.messages, "every read agrees with the append");
}

/// Editing the text of a message with parts replaces its text parts and keeps its
/// attachments, tool parts and reasoning where they were; editing a plain message keeps
/// it plain.
pub async fn edit_of_a_message_with_parts_keeps_attachments_and_replaces_text(
    make: &impl MakeStore,
) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    let with = with_parts(NewMessage::user(""), every_part());
    let attachments_only = with_parts(
        NewMessage::user(""),
        vec![Part::image(ImageFormat::Gif, b"GIF89a\x00\xff".to_vec())],
    );
    let plain = NewMessage::user("plain text");
    append(
        &*t.store,
        &user,
        chat.id,
        vec![with.clone(), attachments_only.clone(), plain.clone()],
    )
    .await;

    let edited = t
        .store
        .update_message(
            &user,
            with.id,
            MessageUpdate::new().with_content("fixed the question"),
        )
        .await
        .expect("edit a message with parts");
    let mut expected = every_part();
    crate::parts::replace_text(&mut expected, "fixed the question");
    assert_eq!(edited.content, "fixed the question");
    assert!(edited.parts == expected, "attachments stay, text replaced");
    assert_eq!(
        t.store.get_message(&user, with.id).await.expect("get"),
        edited
    );

    // Metadata alone leaves the parts as they are.
    let edited = t
        .store
        .update_message(
            &user,
            with.id,
            MessageUpdate::new().with_metadata(super::metadata(json!({"seen": true}))),
        )
        .await
        .expect("edit metadata");
    assert!(edited.parts == expected);
    assert_eq!(edited.content, "fixed the question");

    // A message of attachments only gains a text part at the end.
    let edited = t
        .store
        .update_message(
            &user,
            attachments_only.id,
            MessageUpdate::new().with_content("caption"),
        )
        .await
        .expect("edit a message without text parts");
    let mut expected_caption = attachments_only.parts.clone();
    expected_caption.push(Part::text("caption"));
    assert_eq!(edited.parts, expected_caption);
    assert_eq!(edited.content, "caption");

    let edited = t
        .store
        .update_message(
            &user,
            plain.id,
            MessageUpdate::new().with_content("still plain"),
        )
        .await
        .expect("edit a plain message");
    assert!(edited.parts.is_empty(), "a plain message stays plain");
    assert_eq!(edited.content, "still plain");

    let all = all_messages(&*t.store, &user, chat.id).await;
    assert!(all[0].parts == expected);
    assert_eq!(all[1].parts, expected_caption);
    assert_eq!(all[2], edited);
}

/// A plain-text message reads back with no parts from every read, and its text exactly.
pub async fn plain_messages_read_back_without_parts(make: &impl MakeStore) {
    let t = make.make().await;
    let user = random_user();
    let chat = conversation(&*t.store, &user).await;
    // One text part is plain text: `with_parts` keeps no parts for it.
    let one_text = NewMessage::user("").with_parts(vec![Part::text("only text")]);
    assert!(one_text.parts.is_empty());
    let sent = vec![NewMessage::user("hello"), one_text];
    let stored = append(&*t.store, &user, chat.id, sent.clone()).await;
    let replay = t
        .store
        .append(&user, AppendRequest::existing(chat.id, sent.clone()))
        .await
        .expect("replay")
        .messages;
    let listed = all_messages(&*t.store, &user, chat.id).await;
    let recent = t
        .store
        .recent_messages(&user, chat.id, 2)
        .await
        .expect("recent");
    for messages in [&stored, &replay, &listed, &recent] {
        assert_eq!(
            messages
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>(),
            ["hello", "only text"]
        );
        assert!(messages.iter().all(|m| m.parts.is_empty()));
    }
    let read = t.store.get_message(&user, sent[0].id).await.expect("get");
    assert!(read.parts.is_empty());
}
