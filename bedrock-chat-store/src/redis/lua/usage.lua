-- The user's conversation and message counts and the usage ledger's all-time totals.
-- ARGV[4] user. Returns one row: conversations, messages, in, out, total, calls, cache
-- read, cache write (a field never set is nil: 0).
local user = ARGV[4]
local key = user_key(user)
local conversations, messages = 0, 0
for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
  local count = redis.call('HGET', chat_key(string.sub(member, 22)), 'count')
  if count then
    conversations = conversations + 1
    messages = messages + tonumber(count)
  else
    redis.call('ZREM', key, member)
  end
end
local t = redis.call('HMGET', usage_key(user), 'in', 'out', 'total', 'calls', 'cread', 'cwrite')
return { 'ok', { { tostring(conversations), tostring(messages), t[1], t[2], t[3], t[4], t[5],
  t[6] } } }
