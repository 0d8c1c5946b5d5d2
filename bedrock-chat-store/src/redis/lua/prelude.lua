-- Shared by every script (prepended by the store). The key layout is in src/redis/mod.rs.
-- ARGV[1] key prefix, ARGV[2] TTL in milliseconds (0: keep forever), ARGV[3] now in
-- microseconds since the Unix epoch, from the store's clock. `now` stays a string: Lua
-- numbers would print a 16-digit time in exponent notation. The last argument of every
-- script is `now` as the 20 order-preserving digits that start a member of a user's list.
local prefix = ARGV[1]
local ttl = tonumber(ARGV[2])
local now = ARGV[3]
local activity = ARGV[#ARGV]

local function chat_key(chat) return prefix .. ':chat:' .. chat end
local function seq_key(chat) return prefix .. ':chat:' .. chat .. ':seq' end
local function msg_key(chat) return prefix .. ':chat:' .. chat .. ':msg' end
-- Message ids are scoped per user: the index of the user's message `id`.
local function index_key(user, id) return prefix .. ':user:' .. user .. ':msg:' .. id end
-- The global index of releases before that, still read for their messages.
local function legacy_index_key(id) return prefix .. ':msg:' .. id end
local function user_key(user) return prefix .. ':user:' .. user .. ':chats' end
local function usage_key(user) return prefix .. ':user:' .. user .. ':usage' end
local function usage_days_key(user) return prefix .. ':user:' .. user .. ':usage:days' end

-- The owner of a conversation, or false.
local function owner(chat)
  return redis.call('HGET', chat_key(chat), 'user')
end

-- Pushes everything that belongs to a conversation to expire `ttl` from now.
local function touch(chat, user)
  if ttl > 0 then
    redis.call('PEXPIRE', chat_key(chat), ttl)
    redis.call('PEXPIRE', seq_key(chat), ttl)
    redis.call('PEXPIRE', msg_key(chat), ttl)
    redis.call('PEXPIRE', user_key(user), ttl)
    for _, id in ipairs(redis.call('ZRANGE', seq_key(chat), 0, -1)) do
      redis.call('PEXPIRE', index_key(user, id), ttl)
    end
  end
end

-- A conversation as the store decodes it (a missing prompt is false, sent as nil).
local function conversation_row(chat)
  local f = redis.call('HMGET', chat_key(chat),
    'user', 'title', 'prompt', 'meta', 'count', 'created', 'updated')
  return { chat, f[1], f[2], f[3], f[4], f[5], f[6], f[7] }
end

-- A message as the store decodes it (parts are false, sent as nil, for a plain message).
local function message_row(chat, id)
  local f = redis.call('HMGET', msg_key(chat), id, id .. ':s', id .. ':c', id .. ':m', id .. ':u',
    id .. ':p')
  return { id, chat, f[2], f[1], f[3], f[4], f[5], f[6] }
end

-- The conversation in which `user` stored a message `id`, or false.
local function known_chat(user, id)
  local chat = redis.call('GET', index_key(user, id))
  if not chat then
    chat = redis.call('GET', legacy_index_key(id))
    if chat and owner(chat) ~= user then chat = false end
  end
  return chat
end

-- The conversation of message `id` when `user` owns it, or false.
local function locate(user, id)
  local chat = known_chat(user, id)
  if not chat or owner(chat) ~= user or redis.call('HEXISTS', msg_key(chat), id) == 0 then
    return false
  end
  return chat
end

-- Drops the index entries of the user's message `id` in `chat`.
local function unindex(user, id, chat)
  redis.call('DEL', index_key(user, id))
  if redis.call('GET', legacy_index_key(id)) == chat then
    redis.call('DEL', legacy_index_key(id))
  end
end

-- Marks a conversation as changed now: its `updated` time, and its place in the user's
-- list (newest first by last activity).
local function set_updated(chat, user)
  local member = activity .. ':' .. chat
  local old = redis.call('HGET', chat_key(chat), 'member')
  if old and old ~= member then redis.call('ZREM', user_key(user), old) end
  redis.call('ZADD', user_key(user), 0, member)
  redis.call('HSET', chat_key(chat), 'updated', now, 'member', member)
end
