-- The user's ledger per day, oldest first, for the days numbered ARGV[5] to ARGV[6]
-- (days since 1970-01-01, both included). ARGV[4] user. Rows: day, in, out, total, calls,
-- cache read, cache write.
local user = ARGV[4]
local key = usage_key(user)
local rows = {}
for _, day in ipairs(redis.call('ZRANGE', usage_days_key(user), ARGV[5], ARGV[6], 'BYSCORE')) do
  local f = redis.call('HMGET', key, day .. ':in', day .. ':out', day .. ':total', day .. ':calls',
    day .. ':cread', day .. ':cwrite')
  rows[#rows + 1] = { day, f[1], f[2], f[3], f[4], f[5], f[6] }
end
return { 'ok', rows }
