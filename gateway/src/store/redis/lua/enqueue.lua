-- Stores a batch of events, each with all its deliveries, due now. Each
-- event is all-or-nothing; the batch is one atomic script.
-- ARGV: prefix, retention ms, m (events), then m groups:
--   event id, type, data, test ("1"/"0"),
--   idempotency key ('' for none), fingerprint, answer, key ttl ms,
--   API rate-limit key ('' for none), its GCRA interval us, tolerance us,
--   n, then n pairs (delivery id, webhook id).
-- The caller's API rate limit is checked first (the same GCRA as gcra.lua),
-- so ingest is one round trip. Returns one array per event:
-- {2, wait us, tat, now} when over the limit (nothing written),
-- {0, "fingerprint\nanswer", tat, now} when the idempotency key was seen
-- before (nothing written), else {1, tat, now}.
local p, retention, m = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
-- Times as integer strings, formatted once: Redis would format every Lua
-- number argument as a double.
local now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local qf, idx = p .. ':q:first', p .. ':idx:dlv'
-- GCRA state per rate-limit key, read once and written once per batch.
local tats, ttls = {}, {}
local out = {}
local a = 4
for e = 1, m do
  local eid, typ, data, test = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local ikey, fingerprint, answer, ittl = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  local rl, n = ARGV[a + 8], tonumber(ARGV[a + 11])
  local first = a + 12
  a = first + 2 * n
  local tat_out, result = 0, nil
  if rl ~= '' then
    local interval, tolerance = tonumber(ARGV[first - 3]), tonumber(ARGV[first - 2])
    local tat = tats[rl]
    if tat == nil then tat = tonumber(redis.call('GET', p .. ':rl:' .. rl)) or now_us end
    if tat < now_us then tat = now_us end
    if tat - now_us > tolerance then
      tats[rl] = tat
      result = {2, tat - tolerance - now_us, tat, now_us}
    else
      tat_out = tat + interval
      tats[rl] = tat_out
      ttls[rl] = true
    end
  end
  if result == nil and ikey ~= '' then
    local seen = redis.call('GET', p .. ':idem:' .. ikey)
    if seen then result = {0, seen, tat_out, now_us} end
  end
  if result == nil then
    local ek = p .. ':evt:' .. eid
    redis.call('HSET', ek, 'type', typ, 'data', data, 'test', test, 'createdAt', now, 'pending', n)
    if n == 0 then
      redis.call('PEXPIRE', ek, retention)
    end
    for i = 0, n - 1 do
      local did, wid = ARGV[first + 2 * i], ARGV[first + 1 + 2 * i]
      redis.call('HSET', p .. ':dlv:' .. did,
        'event', eid, 'webhook', wid, 'type', typ, 'test', test, 'status', 'pending',
        'attempts', '0', 'retryBase', '0', 'createdAt', now, 'updatedAt', now, 'due', now, 'lease', '')
      redis.call('ZADD', qf, now, did)
      redis.call('SADD', p .. ':wh:' .. wid .. ':pending', did)
      -- History indexes: score 0, ordered by the time-sortable id.
      redis.call('ZADD', idx, 0, did)
      redis.call('ZADD', p .. ':idx:wh:' .. wid, 0, did)
    end
    if ikey ~= '' then
      redis.call('SET', p .. ':idem:' .. ikey, fingerprint .. '\n' .. answer, 'PX', ittl)
    end
    result = {1, tat_out, now_us}
  end
  out[e] = result
end
for rl in pairs(ttls) do
  local tat = tats[rl]
  redis.call('SET', p .. ':rl:' .. rl, string.format('%.0f', tat), 'PX',
    string.format('%d', math.ceil((tat - now_us) / 1000) + 1000))
end
return out
