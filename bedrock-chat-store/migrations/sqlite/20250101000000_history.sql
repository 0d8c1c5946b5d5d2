-- The history schema. Ids are UUIDs as lowercase hyphenated text (their text order is
-- their byte order, which keyset pagination relies on); times are microseconds since the
-- Unix epoch; metadata is a JSON object as text.

CREATE TABLE conversations (
    id            TEXT    NOT NULL PRIMARY KEY,
    user_id       TEXT    NOT NULL,
    title         TEXT    NOT NULL,
    system_prompt TEXT,
    metadata      TEXT    NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0,
    -- The highest sequence number ever given: numbers continue after deletes.
    last_seq      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- A user's conversations newest first by (created_at, id): a backwards range scan.
CREATE INDEX conversations_by_user ON conversations (user_id, created_at, id);

CREATE TABLE messages (
    id            TEXT    NOT NULL PRIMARY KEY,
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
    -- Also the index for a conversation's messages by seq.
    UNIQUE (chat_id, seq)
);
