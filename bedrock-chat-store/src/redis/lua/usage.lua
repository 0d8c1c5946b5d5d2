-- Per conversation of the user: message count and token totals. ARGV[4] user.
local key = user_key(ARGV[4])
local rows = {}
for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
  local f = redis.call('HMGET', chat_key(string.sub(member, 22)), 'count', 'in', 'out', 'total')
  if f[1] then
    rows[#rows + 1] = f
  else
    redis.call('ZREM', key, member)
  end
end
return { 'ok', rows }
