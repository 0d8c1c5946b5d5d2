-- Deletes a message; its tokens leave the conversation's totals. ARGV[4] user, [5] id.
local user, id = ARGV[4], ARGV[5]
local chat = locate(user, id)
if not chat then return { 'not_found', {} } end
local usage = redis.call('HGET', msg_key(chat), id .. ':t')
if usage then
  local input, output, total = string.match(usage, '^(%d+) (%d+) (%d+)$')
  redis.call('HINCRBY', chat_key(chat), 'in', '-' .. input)
  redis.call('HINCRBY', chat_key(chat), 'out', '-' .. output)
  redis.call('HINCRBY', chat_key(chat), 'total', '-' .. total)
end
redis.call('HDEL', msg_key(chat), id, id .. ':s', id .. ':c', id .. ':m', id .. ':u', id .. ':t')
redis.call('ZREM', seq_key(chat), id)
redis.call('DEL', index_key(id))
redis.call('HINCRBY', chat_key(chat), 'count', -1)
redis.call('HSET', chat_key(chat), 'updated', now)
touch(chat, user)
return { 'ok', {} }
