-- Disables a webhook (its receiver answered 410 Gone) and dead-letters
-- every delivery of it that is not final yet.
-- ARGV: prefix, webhook id, state JSON, retention ms, log cap.
-- Returns how many deliveries moved to the dead-letter queue.
local p, wid, state, retention, cap = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local t = redis.call('TIME')
local now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
redis.call('HSET', p .. ':whstate', wid, state)
log_change(p, wid, cap)
local set = p .. ':wh:' .. wid .. ':pending'
local ids = redis.call('SMEMBERS', set)
for _, id in ipairs(ids) do
  local k = p .. ':dlv:' .. id
  redis.call('ZREM', p .. ':leases', id)
  redis.call('ZREM', p .. ':q:first', id)
  redis.call('ZREM', p .. ':q:retry', id)
  local eid = redis.call('HGET', k, 'event')
  if eid then
    redis.call('HSET', k, 'status', 'dead', 'lease', '', 'due', '', 'updatedAt', now)
    redis.call('ZADD', p .. ':dead', 0, id)
    redis.call('PEXPIRE', k, retention)
    local ek = p .. ':evt:' .. eid
    if redis.call('HINCRBY', ek, 'pending', -1) <= 0 then
      redis.call('PEXPIRE', ek, retention)
    end
  end
end
redis.call('DEL', set)
return #ids
