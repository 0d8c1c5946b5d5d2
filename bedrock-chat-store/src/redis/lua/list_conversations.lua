-- A page of the user's conversations, newest first by last activity. ARGV[4] user, [5] where to start
-- ('+' or '(' .. the member of the last one seen), [6] how many. Members whose
-- conversation expired are dropped on the way.
local key, start, want = user_key(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local rows = {}
while #rows < want do
  local batch = redis.call('ZRANGE', key, start, '-', 'BYLEX', 'REV', 'LIMIT', 0, want - #rows)
  if #batch == 0 then break end
  for _, member in ipairs(batch) do
    local chat = string.sub(member, 22)
    if redis.call('EXISTS', chat_key(chat)) == 1 then
      rows[#rows + 1] = conversation_row(chat)
    else
      redis.call('ZREM', key, member)
    end
    start = '(' .. member
  end
end
return { 'ok', rows }
