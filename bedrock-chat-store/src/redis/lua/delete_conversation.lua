-- Deletes a conversation and its messages. ARGV[4] user, [5] chat id.
local user, chat = ARGV[4], ARGV[5]
if owner(chat) ~= user then return { 'not_found', {} } end
for _, id in ipairs(redis.call('ZRANGE', seq_key(chat), 0, -1)) do
  unindex(user, id, chat)
end
redis.call('ZREM', user_key(user), redis.call('HGET', chat_key(chat), 'member'))
redis.call('DEL', chat_key(chat), seq_key(chat), msg_key(chat))
return { 'ok', {} }
