-- Changes a conversation. ARGV[4] user, [5] chat id, [6] '1' to set the title, [7] the
-- title, [8] 'keep', 'set' or 'clear' the system prompt, [9] the prompt, [10] '1' to set
-- the metadata, [11] metadata JSON.
local user, chat = ARGV[4], ARGV[5]
if owner(chat) ~= user then return { 'not_found', {} } end
if ARGV[6] == '1' then redis.call('HSET', chat_key(chat), 'title', ARGV[7]) end
if ARGV[8] == 'set' then
  redis.call('HSET', chat_key(chat), 'prompt', ARGV[9])
elseif ARGV[8] == 'clear' then
  redis.call('HDEL', chat_key(chat), 'prompt')
end
if ARGV[10] == '1' then redis.call('HSET', chat_key(chat), 'meta', ARGV[11]) end
set_updated(chat, user)
touch(chat, user)
return { 'ok', { conversation_row(chat) } }
