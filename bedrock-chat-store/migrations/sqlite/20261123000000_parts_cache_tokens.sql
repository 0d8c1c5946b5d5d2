-- Issue 13: messages made of parts, and prompt-cache token counts. Existing rows stay
-- readable, as plain-text messages without cache figures.

-- A message's parts as JSON (a list of `Part`s), NULL for a plain-text message: plain
-- messages store nothing more than before.
ALTER TABLE messages ADD COLUMN parts TEXT;

-- A reply's prompt-cache read and write tokens, NULL when none (read as 0).
ALTER TABLE messages ADD COLUMN cache_read_tokens INTEGER;
ALTER TABLE messages ADD COLUMN cache_write_tokens INTEGER;

-- The ledger sums them like the other counts; rows from before read as 0.
ALTER TABLE usage_ledger ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_ledger ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
