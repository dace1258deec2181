-- Dead-letters every delivery of a webhook in one shard that is not final
-- yet (the webhook was disabled).
-- ARGV: shard prefix, webhook id, retention ms.
-- Returns how many deliveries moved to the dead-letter queue.
local p, wid, retention = ARGV[1], ARGV[2], ARGV[3]
local t = redis.call('TIME')
local now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
local set = p .. ':wh:' .. wid .. ':pending'
local ids = redis.call('SMEMBERS', set)
for _, id in ipairs(ids) do
  local k = p .. ':dlv:' .. id
  redis.call('ZREM', p .. ':leases', id)
  redis.call('HDEL', p .. ':lo', id)
  redis.call('ZREM', p .. ':q:first', id)
  redis.call('ZREM', p .. ':q:retry', id)
  local f = redis.call('HMGET', k, 'event', 'solo', 'status')
  if f[3] then
    redis.call('HSET', k, 'status', 'dead', 'due', '', 'updatedAt', now)
    redis.call('ZADD', p .. ':dead', 0, id)
    if f[2] == '1' then
      expire_record(k, p, id, retention)
    else
      redis.call('PEXPIRE', k, retention)
      local ek = p .. ':evt:' .. f[1]
      if redis.call('HINCRBY', ek, 'pending', -1) <= 0 then
        expire_record(ek, p, f[1], retention)
      end
    end
  end
end
redis.call('DEL', set)
return #ids
