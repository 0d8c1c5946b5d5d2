-- One layered rate-limit decision, atomically: every layer's counter is read, and the
-- cost is spent in all of them or in none. The caller computes each layer's window from
-- its clock and names the counters, so every backend shares one notion of time.
--
-- KEYS[i]        the counter of layer i in its current window
-- ARGV[1]        mode: "check" (spend in every layer if it fits in all), "charge" (spend
--                in every layer regardless), "refund" (give back up to the cost in each)
-- ARGV[2]        cost
-- ARGV[1 + 2i]   layer i's limit
-- ARGV[2 + 2i]   time to live of layer i's counter, in milliseconds
--
-- Returns the units each layer had spent before this call; the caller applies the same
-- rule to them to learn what was decided and what each layer holds now.
local mode = ARGV[1]
local cost = tonumber(ARGV[2])
local used = {}
for i = 1, #KEYS do
    used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end

if mode == 'check' then
    for i = 1, #KEYS do
        local limit = tonumber(ARGV[1 + 2 * i])
        if used[i] >= limit or cost > limit - used[i] then
            -- A layer has no room: nothing is spent anywhere.
            return used
        end
    end
end

if cost > 0 then
    for i = 1, #KEYS do
        if mode == 'refund' then
            local back = math.min(cost, used[i])
            if back > 0 then
                redis.call('DECRBY', KEYS[i], back)
            end
        else
            if redis.call('INCRBY', KEYS[i], cost) == cost then
                -- A new counter (or one refunded to zero): it expires by itself.
                redis.call('PEXPIRE', KEYS[i], ARGV[2 + 2 * i])
            end
        end
    end
end
return used
