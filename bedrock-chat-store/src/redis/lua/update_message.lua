-- Edits a message. ARGV[4] user, [5] message id, [6] '1' to set the content, [7] the
-- content, [8] '1' to set the metadata, [9] metadata JSON.
local user, id = ARGV[4], ARGV[5]
local chat = locate(user, id)
if not chat then return { 'not_found', {} } end
if ARGV[6] == '1' then redis.call('HSET', msg_key(chat), id .. ':c', ARGV[7]) end
if ARGV[8] == '1' then redis.call('HSET', msg_key(chat), id .. ':m', ARGV[9]) end
redis.call('HSET', msg_key(chat), id .. ':u', now)
set_updated(chat, user)
touch(chat, user)
return { 'ok', { message_row(chat, id) } }
