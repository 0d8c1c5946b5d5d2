-- One rate-limit decision, atomically. The caller computes the window from its clock and
-- names the window's counter key, so every backend shares one notion of time.
--
-- KEYS[1]  the counter of one key in one window
-- ARGV[1]  mode: "check" (spend if it fits), "charge" (spend regardless), "refund"
-- ARGV[2]  cost
-- ARGV[3]  limit
-- ARGV[4]  time to live of the counter, in milliseconds
--
-- Returns { allowed (1 or 0), units spent in the window after this call }.
local mode = ARGV[1]
local cost = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')

if mode == 'refund' then
    local back = math.min(cost, used)
    if back > 0 then
        used = redis.call('DECRBY', KEYS[1], back)
    end
    return { 1, used }
end

local allowed = 1
if mode == 'check' then
    if used >= limit or cost > limit - used then
        return { 0, used }
    end
elseif used + cost > limit then
    allowed = 0
end
if cost > 0 then
    used = redis.call('INCRBY', KEYS[1], cost)
    redis.call('PEXPIRE', KEYS[1], ttl)
end
return { allowed, used }
