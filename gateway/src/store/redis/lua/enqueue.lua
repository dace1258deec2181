-- Stores one event and all its deliveries, due now. Atomic.
-- ARGV: prefix, event id, type, data, test ("1"/"0"), retention ms,
--       n, then n pairs (delivery id, webhook id).
-- Returns the server time in ms used as createdAt.
local p = ARGV[1]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local eid, typ, data, test, retention = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local n = tonumber(ARGV[7])
local ek = p .. ':evt:' .. eid
redis.call('HSET', ek, 'type', typ, 'data', data, 'test', test, 'createdAt', now, 'pending', n)
if n == 0 then
  redis.call('PEXPIRE', ek, retention)
end
for i = 0, n - 1 do
  local did, wid = ARGV[8 + 2 * i], ARGV[9 + 2 * i]
  redis.call('HSET', p .. ':dlv:' .. did,
    'event', eid, 'webhook', wid, 'type', typ, 'test', test, 'status', 'pending',
    'attempts', 0, 'retryBase', 0, 'createdAt', now, 'updatedAt', now, 'due', now, 'lease', '')
  redis.call('ZADD', p .. ':q:first', now, did)
  redis.call('SADD', p .. ':wh:' .. wid .. ':pending', did)
  redis.call('ZADD', p .. ':idx:dlv', now, did)
  redis.call('ZADD', p .. ':idx:wh:' .. wid, now, did)
end
return now
