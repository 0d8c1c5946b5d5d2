-- Issue 8: conversations listed by last activity, message ids scoped per user, and a
-- usage ledger kept apart from the history. Existing rows stay readable, and a release
-- from before this migration keeps working against it: it appends through
-- bedrock_chat_append, replaced below with the same signature.

-- A user's conversations newest first by last activity, (updated_at, id): a backwards
-- index range scan. The (created_at, id) index stays for releases that still list by it.
CREATE INDEX conversations_user_updated_id ON conversations (user_id, updated_at, id);

-- Message ids are unique per user, not globally: messages carry their owner (copied from
-- the conversation), the key becomes (user_id, id), and the global primary key goes.
ALTER TABLE messages ADD COLUMN user_id text;
UPDATE messages m SET user_id = c.user_id FROM conversations c WHERE c.id = m.chat_id;
ALTER TABLE messages ALTER COLUMN user_id SET NOT NULL;
CREATE UNIQUE INDEX messages_user_id ON messages (user_id, id);
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD CONSTRAINT messages_pkey PRIMARY KEY USING INDEX messages_user_id;

-- The usage ledger: per user and UTC day, and per user for all time. Deleting history
-- never touches it; one statement (two upserts in a CTE) records a call in both.
CREATE TABLE usage_days (
    user_id       text   NOT NULL,
    day           date   NOT NULL,
    input_tokens  bigint NOT NULL,
    output_tokens bigint NOT NULL,
    total_tokens  bigint NOT NULL,
    calls         bigint NOT NULL,
    PRIMARY KEY (user_id, day)
);

CREATE TABLE usage_totals (
    user_id       text   PRIMARY KEY,
    input_tokens  bigint NOT NULL,
    output_tokens bigint NOT NULL,
    total_tokens  bigint NOT NULL,
    calls         bigint NOT NULL
);

-- Existing replies are the best record of what was spent before the ledger: they seed
-- the all-time totals (not the days, whose calls were never counted).
INSERT INTO usage_totals (user_id, input_tokens, output_tokens, total_tokens, calls)
SELECT user_id, COALESCE(sum(input_tokens), 0), COALESCE(sum(output_tokens), 0),
       COALESCE(sum(total_tokens), 0), count(*)
  FROM messages
 WHERE input_tokens IS NOT NULL OR output_tokens IS NOT NULL
 GROUP BY user_id;

-- The append function, now checking and storing message ids per user.
CREATE OR REPLACE FUNCTION bedrock_chat_append(
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
     WHERE m.user_id = p_user_id AND m.id = ANY (m_ids);
    IF v_here = v_count THEN
        RETURN QUERY
            SELECT true, m.id, m.chat_id, m.seq, m.role, m.content, m.reply_to, m.model,
                   m.input_tokens, m.output_tokens, m.total_tokens, m.metadata,
                   m.created_at, m.updated_at
              FROM unnest(m_ids) WITH ORDINALITY AS r (id, n)
              JOIN messages m ON m.user_id = p_user_id AND m.id = r.id
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
                   (user_id, id, chat_id, seq, role, content, reply_to, model, input_tokens,
                    output_tokens, total_tokens, metadata, created_at, updated_at)
            SELECT p_user_id, r.id, p_chat_id, v_last_seq + r.n, r.role, r.content, r.reply_to, r.model,
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
