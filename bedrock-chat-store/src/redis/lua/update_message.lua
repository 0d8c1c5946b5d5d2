-- Edits a message. ARGV[4] user, [5] message id, [6] '1' to set the content, [7] the
-- content, [8] '1' to set the metadata, [9] metadata JSON, [10] '1' when [11] holds the
-- message's parts as the caller read them and [12] its parts with the new text.
--
-- New text on a message with parts must replace its text parts too, which the store does
-- (not Lua, whose JSON would not keep them byte for byte): without [10], such an edit
-- writes nothing and answers 'parts' with the stored parts; the store comes back with
-- both, and the edit applies only if the parts are still those it read (else 'parts'
-- again). Plain messages (no parts field) are edited in one call.
local user, id = ARGV[4], ARGV[5]
local chat = locate(user, id)
if not chat then return { 'not_found', {} } end
if ARGV[6] == '1' then
  local parts = redis.call('HGET', msg_key(chat), id .. ':p')
  if parts then
    if ARGV[10] ~= '1' or parts ~= ARGV[11] then return { 'parts', { { parts } } } end
    redis.call('HSET', msg_key(chat), id .. ':p', ARGV[12])
  end
  redis.call('HSET', msg_key(chat), id .. ':c', ARGV[7])
end
if ARGV[8] == '1' then redis.call('HSET', msg_key(chat), id .. ':m', ARGV[9]) end
redis.call('HSET', msg_key(chat), id .. ':u', now)
set_updated(chat, user)
touch(chat, user)
return { 'ok', { message_row(chat, id) } }
