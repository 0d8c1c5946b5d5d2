-- The history schema: conversations and their messages, and the append function that
-- writes an exchange in one round trip.

CREATE TABLE conversations (
    id            uuid        PRIMARY KEY,
    user_id       text        NOT NULL,
    title         text        NOT NULL,
    system_prompt text,
    metadata      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    message_count bigint      NOT NULL DEFAULT 0,
    -- The highest sequence number ever given: numbers continue after deletes.
    last_seq      bigint      NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- A user's conversations newest first by (created_at, id): a backwards index range scan.
CREATE INDEX conversations_user_created_id ON conversations (user_id, created_at, id);

CREATE TABLE messages (
    id            uuid        PRIMARY KEY,
    chat_id       uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq           bigint      NOT NULL,
    role          text        NOT NULL CHECK (role IN ('user', 'assistant')),
    content       text        NOT NULL,
    reply_to      uuid,
    model         text,
    input_tokens  bigint,
    output_tokens bigint,
    total_tokens  bigint,
    metadata      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    -- Also the index for a conversation's messages by seq (and the cascade's lookup).
    CONSTRAINT messages_chat_seq UNIQUE (chat_id, seq)
);

-- Appends messages to a conversation atomically and idempotently, in one statement.
--
-- Locks the conversation row (creating it first when p_create and it is missing), so
-- concurrent appends to one conversation take turns and get gap-free sequence numbers
-- from last_seq. Returns:
-- * no rows: the user has no such conversation (NotFound);
-- * the stored rows with already_stored = true when every id is stored in this
--   conversation already (an idempotent retry: nothing is written);
-- * the new rows with already_stored = false otherwise.
-- Raises unique_violation (Conflict) when the id belongs to another user's conversation
-- and p_create is set, or when some ids are stored already; the statement's transaction
-- then rolls back, so nothing is written.
CREATE FUNCTION bedrock_chat_append(
    p_user_id        text,
    p_chat_id        uuid,
    p_create         boolean,
    p_title          text,
    p_system_prompt  text,
    p_metadata       jsonb,
    p_now            timestamptz,
    m_ids            uuid[],
    m_roles          text[],
    m_contents       text[],
    m_reply_to       uuid[],
    m_models         text[],
    m_input_tokens   bigint[],
    m_output_tokens  bigint[],
    m_total_tokens   bigint[],
    m_metadata       jsonb[]
) RETURNS TABLE (
    already_stored boolean,
    id             uuid,
    chat_id        uuid,
    seq            bigint,
    role           text,
    content        text,
    reply_to       uuid,
    model          text,
    input_tokens   bigint,
    output_tokens  bigint,
    total_tokens   bigint,
    metadata       jsonb,
    created_at     timestamptz,
    updated_at     timestamptz
)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_owner    text;
    v_last_seq bigint;
    v_count    integer := cardinality(m_ids);
    v_known    integer;
    v_here     integer;
BEGIN
    SELECT c.user_id, c.last_seq INTO v_owner, v_last_seq
      FROM conversations c
     WHERE c.id = p_chat_id
       FOR UPDATE;
    IF NOT FOUND THEN
        IF NOT p_create THEN
            RETURN;
        END IF;
        -- A concurrent append may create it first: then this waits for it and uses it.
        INSERT INTO conversations AS c
               (id, user_id, title, system_prompt, metadata, created_at, updated_at)
        VALUES (p_chat_id, p_user_id, p_title, p_system_prompt, p_metadata, p_now, p_now)
        ON CONFLICT (id) DO NOTHING;
        SELECT c.user_id, c.last_seq INTO v_owner, v_last_seq
          FROM conversations c
         WHERE c.id = p_chat_id
           FOR UPDATE;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;

    IF v_owner <> p_user_id THEN
        IF p_create THEN
            RAISE EXCEPTION USING ERRCODE = 'unique_violation',
                MESSAGE = format('conversation id %s is taken', p_chat_id);
        END IF;
        RETURN;
    END IF;

    SELECT count(*), count(*) FILTER (WHERE m.chat_id = p_chat_id)
      INTO v_known, v_here
      FROM messages m
     WHERE m.id = ANY (m_ids);
    IF v_here = v_count THEN
        RETURN QUERY
            SELECT true, m.id, m.chat_id, m.seq, m.role, m.content, m.reply_to, m.model,
                   m.input_tokens, m.output_tokens, m.total_tokens, m.metadata,
                   m.created_at, m.updated_at
              FROM unnest(m_ids) WITH ORDINALITY AS r (id, n)
              JOIN messages m ON m.id = r.id
             ORDER BY r.n;
        RETURN;
    END IF;
    IF v_known > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'unique_violation',
            MESSAGE = 'some of these message ids are stored already';
    END IF;

    RETURN QUERY
        WITH inserted AS (
            INSERT INTO messages AS m
                   (id, chat_id, seq, role, content, reply_to, model, input_tokens,
                    output_tokens, total_tokens, metadata, created_at, updated_at)
            SELECT r.id, p_chat_id, v_last_seq + r.n, r.role, r.content, r.reply_to, r.model,
                   r.input_tokens, r.output_tokens, r.total_tokens, r.metadata, p_now, p_now
              FROM unnest(m_ids, m_roles, m_contents, m_reply_to, m_models, m_input_tokens,
                          m_output_tokens, m_total_tokens, m_metadata)
                   WITH ORDINALITY AS r (id, role, content, reply_to, model, input_tokens,
                                         output_tokens, total_tokens, metadata, n)
            RETURNING m.id, m.chat_id, m.seq, m.role, m.content, m.reply_to, m.model,
                      m.input_tokens, m.output_tokens, m.total_tokens, m.metadata,
                      m.created_at, m.updated_at
        )
        SELECT false, i.id, i.chat_id, i.seq, i.role, i.content, i.reply_to, i.model,
               i.input_tokens, i.output_tokens, i.total_tokens, i.metadata,
               i.created_at, i.updated_at
          FROM inserted i
         ORDER BY i.seq;

    UPDATE conversations c
       SET last_seq = v_last_seq + v_count,
           message_count = c.message_count + v_count,
           updated_at = p_now
     WHERE c.id = p_chat_id;
END;
$$;
