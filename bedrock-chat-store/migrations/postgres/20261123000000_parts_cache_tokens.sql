-- Issue 13: messages made of parts, and prompt-cache token counts. Existing rows stay
-- readable, as plain-text messages without cache figures, and a release from before this
-- migration keeps working against it: its 16-argument bedrock_chat_append stays, and the
-- new columns are nullable or default to 0.

-- A message's parts (a JSON list of `Part`s), NULL for a plain-text message: plain
-- messages store nothing more than before. A reply's prompt-cache read and write tokens,
-- NULL when none (read as 0), for the same reason.
ALTER TABLE messages ADD COLUMN parts jsonb;
ALTER TABLE messages ADD COLUMN cache_read_tokens bigint;
ALTER TABLE messages ADD COLUMN cache_write_tokens bigint;

-- The ledger sums them like the other counts; rows from before read as 0.
ALTER TABLE usage_days ADD COLUMN cache_read_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_days ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_totals ADD COLUMN cache_read_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_totals ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0;

-- A message's parts after an edit that sets its text to p_text, as
-- bedrock_chat_core::parts::replace_text does it: the first text part takes the new text,
-- the other text parts go, everything else stays where it was; with no text part, one is
-- added at the end. An edit stays one statement.
CREATE FUNCTION bedrock_chat_replace_text(p_parts jsonb, p_text text) RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    WITH items AS (
        SELECT e.value AS part, e.n, e.value->>'type' = 'text' AS is_text
          FROM jsonb_array_elements(p_parts) WITH ORDINALITY AS e (value, n)
    ), first_text AS (
        SELECT min(n) AS n FROM items WHERE is_text
    )
    SELECT CASE
        WHEN (SELECT n FROM first_text) IS NULL THEN
            p_parts || jsonb_build_array(jsonb_build_object('type', 'text', 'text', p_text))
        ELSE (
            SELECT jsonb_agg(CASE WHEN i.n = f.n
                                  THEN jsonb_set(i.part, '{text}', to_jsonb(p_text))
                                  ELSE i.part END
                             ORDER BY i.n)
              FROM items i, first_text f
             WHERE NOT i.is_text OR i.n = f.n
        )
    END
$$;

-- The append function with the parts and cache counts of each message: an overload of
-- the 16-argument one (which older releases still call), same steps.
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
    m_metadata       jsonb[],
    m_parts          jsonb[],
    m_cache_read     bigint[],
    m_cache_write    bigint[]
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
    updated_at     timestamptz,
    parts              jsonb,
    cache_read_tokens  bigint,
    cache_write_tokens bigint
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
                   m.created_at, m.updated_at, m.parts, m.cache_read_tokens,
                   m.cache_write_tokens
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
                    output_tokens, total_tokens, metadata, created_at, updated_at, parts,
                    cache_read_tokens, cache_write_tokens)
            SELECT p_user_id, r.id, p_chat_id, v_last_seq + r.n, r.role, r.content, r.reply_to, r.model,
                   r.input_tokens, r.output_tokens, r.total_tokens, r.metadata, p_now, p_now,
                   r.parts, r.cache_read, r.cache_write
              FROM unnest(m_ids, m_roles, m_contents, m_reply_to, m_models, m_input_tokens,
                          m_output_tokens, m_total_tokens, m_metadata, m_parts, m_cache_read,
                          m_cache_write)
                   WITH ORDINALITY AS r (id, role, content, reply_to, model, input_tokens,
                                         output_tokens, total_tokens, metadata, parts,
                                         cache_read, cache_write, n)
            RETURNING m.id, m.chat_id, m.seq, m.role, m.content, m.reply_to, m.model,
                      m.input_tokens, m.output_tokens, m.total_tokens, m.metadata,
                      m.created_at, m.updated_at, m.parts, m.cache_read_tokens,
                      m.cache_write_tokens
        )
        SELECT false, i.id, i.chat_id, i.seq, i.role, i.content, i.reply_to, i.model,
               i.input_tokens, i.output_tokens, i.total_tokens, i.metadata,
               i.created_at, i.updated_at, i.parts, i.cache_read_tokens,
               i.cache_write_tokens
          FROM inserted i
         ORDER BY i.seq;

    UPDATE conversations c
       SET last_seq = v_last_seq + v_count,
           message_count = c.message_count + v_count,
           updated_at = p_now
     WHERE c.id = p_chat_id;
END;
$$;
