-- One rate-limit decision, atomically. The caller computes the window from its clock and
-- names the window's counter key, so every backend shares one notion of time.
--
-- KEYS[1]  the counter of one key in one window
-- ARGV[1]  mode: "check" (spend if it fits), "charge" (spend regardless), "refund"
-- ARGV[2]  cost
-- ARGV[3]  limit
-- ARGV[4]  time to live of the counter, in milliseconds
--
-- Returns the units spent in the window after this call when allowed, and -(units + 1)
-- when refused: one integer, cheaper to encode and parse than a reply array.
--
-- The common case, an allowed check of an existing counter, is a single INCRBY: the
-- server does as little as it can per decision.
local mode = ARGV[1]
local cost = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])

if mode == 'refund' or cost == 0 then
    local used = tonumber(redis.call('GET', KEYS[1]) or '0')
    if mode == 'refund' then
        local back = math.min(cost, used)
        if back > 0 then
            used = redis.call('DECRBY', KEYS[1], back)
        end
        return used
    end
    -- A zero-cost check asks whether anything is left.
    if (mode == 'check' and used < limit) or (mode ~= 'check' and used <= limit) then
        return used
    end
    return -used - 1
end

local used = redis.call('INCRBY', KEYS[1], cost)
if used == cost then
    -- A new counter (or one refunded to zero): it expires by itself.
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
if mode == 'check' and used > limit then
    -- It does not fit: take the cost back, nothing is spent.
    return -redis.call('DECRBY', KEYS[1], cost) - 1
end
if used <= limit then
    return used
end
return -used - 1
