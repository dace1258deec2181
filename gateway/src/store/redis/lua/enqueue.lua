-- Stores one event and all its deliveries, due now. Atomic.
-- ARGV: prefix, event id, type, data, test ("1"/"0"), retention ms,
--       idempotency key ('' for none), fingerprint, answer, key ttl ms,
--       n, then n pairs (delivery id, webhook id).
-- Returns {1} when stored, or {0, "fingerprint\nanswer"} when the
-- idempotency key was seen before (and nothing was written).
local p = ARGV[1]
local eid, typ, data, test, retention = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local ikey, fingerprint, answer, ittl = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
if ikey ~= '' then
  local seen = redis.call('GET', p .. ':idem:' .. ikey)
  if seen then return {0, seen} end
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local n = tonumber(ARGV[11])
local ek = p .. ':evt:' .. eid
redis.call('HSET', ek, 'type', typ, 'data', data, 'test', test, 'createdAt', now, 'pending', n)
if n == 0 then
  redis.call('PEXPIRE', ek, retention)
end
for i = 0, n - 1 do
  local did, wid = ARGV[12 + 2 * i], ARGV[13 + 2 * i]
  redis.call('HSET', p .. ':dlv:' .. did,
    'event', eid, 'webhook', wid, 'type', typ, 'test', test, 'status', 'pending',
    'attempts', 0, 'retryBase', 0, 'createdAt', now, 'updatedAt', now, 'due', now, 'lease', '')
  redis.call('ZADD', p .. ':q:first', now, did)
  redis.call('SADD', p .. ':wh:' .. wid .. ':pending', did)
  -- History indexes: score 0, ordered by the time-sortable id.
  redis.call('ZADD', p .. ':idx:dlv', 0, did)
  redis.call('ZADD', p .. ':idx:wh:' .. wid, 0, did)
end
if ikey ~= '' then
  redis.call('SET', p .. ':idem:' .. ikey, fingerprint .. '\n' .. answer, 'PX', ittl)
end
return {1}
