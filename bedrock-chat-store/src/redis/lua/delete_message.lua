-- Deletes a message (the usage ledger keeps what it cost). ARGV[4] user, [5] id.
local user, id = ARGV[4], ARGV[5]
local chat = locate(user, id)
if not chat then return { 'not_found', {} } end
-- `:t` is only written by releases before the usage ledger.
redis.call('HDEL', msg_key(chat), id, id .. ':s', id .. ':c', id .. ':m', id .. ':u', id .. ':t',
  id .. ':p')
redis.call('ZREM', seq_key(chat), id)
unindex(user, id, chat)
redis.call('HINCRBY', chat_key(chat), 'count', -1)
set_updated(chat, user)
touch(chat, user)
return { 'ok', {} }
