-- Stores one event and all its deliveries, due now. Atomic.
-- ARGV: prefix, event id, type, data, test ("1"/"0"), retention ms,
--       idempotency key ('' for none), fingerprint, answer, key ttl ms,
--       API rate-limit key ('' for none), its GCRA interval us, tolerance us,
--       n, then n pairs (delivery id, webhook id).
-- The caller's API rate limit is checked first (the same GCRA as gcra.lua),
-- so ingest is one round trip. Returns {2, wait us, tat, now} when over the
-- limit (nothing written), {0, "fingerprint\nanswer", tat, now} when the
-- idempotency key was seen before (nothing written), else {1, tat, now}.
local p = ARGV[1]
local eid, typ, data, test, retention = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local ikey, fingerprint, answer, ittl = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local tat_out, now_us = 0, tonumber(t[1]) * 1000000 + tonumber(t[2])
if ARGV[11] ~= '' then
  local k = p .. ':rl:' .. ARGV[11]
  local interval, tolerance = tonumber(ARGV[12]), tonumber(ARGV[13])
  local tat = tonumber(redis.call('GET', k)) or now_us
  if tat < now_us then tat = now_us end
  if tat - now_us > tolerance then
    return {2, tat - tolerance - now_us, tat, now_us}
  end
  tat_out = tat + interval
  redis.call('SET', k, string.format('%.0f', tat_out), 'PX', math.ceil((tat_out - now_us) / 1000) + 1000)
end
if ikey ~= '' then
  local seen = redis.call('GET', p .. ':idem:' .. ikey)
  if seen then return {0, seen, tat_out, now_us} end
end
local n = tonumber(ARGV[14])
local ek = p .. ':evt:' .. eid
redis.call('HSET', ek, 'type', typ, 'data', data, 'test', test, 'createdAt', now, 'pending', n)
if n == 0 then
  redis.call('PEXPIRE', ek, retention)
end
for i = 0, n - 1 do
  local did, wid = ARGV[15 + 2 * i], ARGV[16 + 2 * i]
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
return {1, tat_out, now_us}
