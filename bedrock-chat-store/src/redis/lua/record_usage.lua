-- Records one model call in the usage ledger: adds its tokens, and one call, to the
-- user's all-time totals and to the bucket of its UTC day. ARGV[4] user, [5] the day
-- ('YYYY-MM-DD'), [6] the day as days since 1970-01-01 (the score in the list of days),
-- [7] input, [8] output, [9] total tokens, [10] prompt-cache read, [11] prompt-cache
-- write tokens (fields a ledger from before them lacks count from 0). The ledger never
-- expires.
local user, day = ARGV[4], ARGV[5]
local key = usage_key(user)
redis.call('HINCRBY', key, 'in', ARGV[7])
redis.call('HINCRBY', key, 'out', ARGV[8])
redis.call('HINCRBY', key, 'total', ARGV[9])
redis.call('HINCRBY', key, 'calls', 1)
redis.call('HINCRBY', key, day .. ':in', ARGV[7])
redis.call('HINCRBY', key, day .. ':out', ARGV[8])
redis.call('HINCRBY', key, day .. ':total', ARGV[9])
redis.call('HINCRBY', key, day .. ':calls', 1)
-- Only when used, so a ledger without caching stays as small as before.
if ARGV[10] ~= '0' then
  redis.call('HINCRBY', key, 'cread', ARGV[10])
  redis.call('HINCRBY', key, day .. ':cread', ARGV[10])
end
if ARGV[11] ~= '0' then
  redis.call('HINCRBY', key, 'cwrite', ARGV[11])
  redis.call('HINCRBY', key, day .. ':cwrite', ARGV[11])
end
redis.call('ZADD', usage_days_key(user), ARGV[6], day)
return { 'ok', {} }
