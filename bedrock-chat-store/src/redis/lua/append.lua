-- Appends messages atomically and idempotently. ARGV[4] user, [5] chat id, [6] '1' to
-- create the conversation if missing, [7] title, [8] '1' when there is a system prompt,
-- [9] the prompt, [10] metadata JSON, [11] the member for the user's list, [12] the
-- number of messages; then six values per message: id, header JSON, content, metadata
-- JSON, usage ('' or 'input output total'), parts JSON ('' for a plain-text message,
-- which stores no parts field).
local user, chat, create = ARGV[4], ARGV[5], ARGV[6] == '1'
local n = tonumber(ARGV[12])
local first = 13
local function arg(i, field) return ARGV[first + i * 6 + field] end

local found = owner(chat)
if found and found ~= user then
  if create then return { 'conflict_chat', {} } end
  return { 'not_found', {} }
end
if not found and not create then
  return { 'not_found', {} }
end

-- Idempotency: every id stored here already means a retry; some ids known is a conflict.
local known, here = 0, 0
for i = 0, n - 1 do
  local at = known_chat(user, arg(i, 0))
  if at then
    known = known + 1
    if at == chat then here = here + 1 end
  end
end
if found and here == n then
  local rows = {}
  for i = 0, n - 1 do rows[#rows + 1] = message_row(chat, arg(i, 0)) end
  return { 'stored', rows }
end
if known > 0 then
  return { 'conflict_ids', {} }
end

if not found then
  redis.call('HSET', chat_key(chat), 'user', user, 'title', ARGV[7], 'meta', ARGV[10],
    'count', 0, 'last_seq', 0, 'created', now, 'updated', now, 'member', ARGV[11])
  if ARGV[8] == '1' then
    redis.call('HSET', chat_key(chat), 'prompt', ARGV[9])
  end
  redis.call('ZADD', user_key(user), 0, ARGV[11])
end

local seq = tonumber(redis.call('HGET', chat_key(chat), 'last_seq'))
local rows = {}
for i = 0, n - 1 do
  seq = seq + 1
  local id = arg(i, 0)
  redis.call('HSET', msg_key(chat), id, arg(i, 1), id .. ':s', seq, id .. ':c', arg(i, 2),
    id .. ':m', arg(i, 3), id .. ':u', now)
  if arg(i, 5) ~= '' then redis.call('HSET', msg_key(chat), id .. ':p', arg(i, 5)) end
  redis.call('ZADD', seq_key(chat), seq, id)
  redis.call('SET', index_key(user, id), chat)
  rows[#rows + 1] = message_row(chat, id)
end
redis.call('HSET', chat_key(chat), 'last_seq', seq)
redis.call('HINCRBY', chat_key(chat), 'count', n)
set_updated(chat, user)
touch(chat, user)
return { 'appended', rows }
