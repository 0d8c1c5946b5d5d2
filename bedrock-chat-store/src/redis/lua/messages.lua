-- Messages of a conversation. ARGV[4] user, [5] chat id, [6] 'recent' for the last
-- ARGV[7] messages oldest first, 'after' for up to ARGV[7] messages after seq ARGV[8]
-- oldest first, or 'before' for up to ARGV[7] messages newest first below the score bound
-- ARGV[8] ('+inf' or '(' .. seq).
local user, chat, mode, count = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
if owner(chat) ~= user then return { 'not_found', {} } end
local ids = {}
if mode == 'recent' then
  if count > 0 then ids = redis.call('ZRANGE', seq_key(chat), -count, -1) end
elseif mode == 'before' then
  ids = redis.call('ZRANGE', seq_key(chat), ARGV[8], '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, count)
else
  ids = redis.call('ZRANGE', seq_key(chat), '(' .. ARGV[8], '+inf', 'BYSCORE', 'LIMIT', 0, count)
end
local rows = {}
for _, id in ipairs(ids) do rows[#rows + 1] = message_row(chat, id) end
return { 'ok', rows }
