-- Creates a conversation. ARGV[4] user, [5] chat id, [6] title, [7] '1' when there is a
-- system prompt, [8] the prompt, [9] metadata JSON, [10] the member for the user's list.
local user, chat = ARGV[4], ARGV[5]
if redis.call('EXISTS', chat_key(chat)) == 1 then
  return { 'conflict', {} }
end
redis.call('HSET', chat_key(chat), 'user', user, 'title', ARGV[6], 'meta', ARGV[9],
  'count', 0, 'last_seq', 0, 'created', now, 'updated', now, 'member', ARGV[10])
if ARGV[7] == '1' then
  redis.call('HSET', chat_key(chat), 'prompt', ARGV[8])
end
redis.call('ZADD', user_key(user), 0, ARGV[10])
touch(chat, user)
return { 'ok', { conversation_row(chat) } }
