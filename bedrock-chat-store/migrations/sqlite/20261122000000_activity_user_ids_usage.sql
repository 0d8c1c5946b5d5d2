-- Issue 8: conversations listed by last activity, message ids scoped per user, and a
-- usage ledger kept apart from the history. Existing rows stay readable: messages are
-- copied with their owner's user id.

-- A user's conversations newest first by last activity, (updated_at, id): a backwards
-- range scan. The (created_at, id) index stays for releases that still list by it.
CREATE INDEX conversations_by_activity ON conversations (user_id, updated_at, id);

-- Message ids are unique per user, not globally: the primary key becomes (user_id, id).
-- SQLite cannot change a primary key in place, so the table is rebuilt (nothing refers to
-- messages, and this runs in the migration's transaction).
CREATE TABLE messages_by_user (
    user_id       TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    chat_id       TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('user', 'assistant')),
    content       TEXT    NOT NULL,
    reply_to      TEXT,
    model         TEXT,
    input_tokens  INTEGER,
    output_tokens INTEGER,
    total_tokens  INTEGER,
    metadata      TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (user_id, id),
    -- Also the index for a conversation's messages by seq, both directions.
    UNIQUE (chat_id, seq)
);

INSERT INTO messages_by_user (user_id, id, chat_id, seq, role, content, reply_to, model,
                              input_tokens, output_tokens, total_tokens, metadata,
                              created_at, updated_at)
SELECT c.user_id, m.id, m.chat_id, m.seq, m.role, m.content, m.reply_to, m.model,
       m.input_tokens, m.output_tokens, m.total_tokens, m.metadata, m.created_at, m.updated_at
FROM messages m JOIN conversations c ON c.id = m.chat_id;

DROP TABLE messages;
ALTER TABLE messages_by_user RENAME TO messages;

-- The usage ledger: one row per user and UTC day ('YYYY-MM-DD'), and one per user with
-- day = 'total' for all time ('total' sorts after every date, so no date range meets it).
-- Deleting history never touches it. One multi-row upsert records a call in both rows.
CREATE TABLE usage_ledger (
    user_id       TEXT    NOT NULL,
    day           TEXT    NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    total_tokens  INTEGER NOT NULL,
    calls         INTEGER NOT NULL,
    PRIMARY KEY (user_id, day)
) WITHOUT ROWID;

-- Existing replies are the best record of what was spent before the ledger: they seed
-- the all-time totals (not the days, whose calls were never counted).
INSERT INTO usage_ledger (user_id, day, input_tokens, output_tokens, total_tokens, calls)
SELECT user_id, 'total', COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),
       COALESCE(SUM(total_tokens), 0), COUNT(*)
FROM messages WHERE input_tokens IS NOT NULL OR output_tokens IS NOT NULL
GROUP BY user_id;
