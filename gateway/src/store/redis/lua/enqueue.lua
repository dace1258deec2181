-- Stores a batch of events of one shard, each with all its deliveries, due
-- now. Each event is all-or-nothing; the batch is one atomic script.
-- ARGV: shard prefix, retention ms, m (events), then m groups:
--   event id, type, data, test ("1"/"0"),
--   idempotency key ('' for none), fingerprint, answer, key ttl ms,
--   n, then n pairs (delivery id, webhook id).
-- The only delivery of an event holds the event's data itself ('solo'):
-- one key per event. Queue and index entries are written with one
-- variadic command per batch (per webhook for the per-webhook keys).
-- Returns one array per event: {0, "fingerprint\nanswer"} when the
-- idempotency key was seen before (nothing written), else {1}.
local p, retention, m = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
-- Times as integer strings, formatted once: Redis would format every Lua
-- number argument as a double.
local now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
local queued, indexed, per_webhook = {}, {}, {}
local out = {}
local a = 4
for e = 1, m do
  local eid, typ, data, test = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local ikey, fingerprint, answer, ittl = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  local n = tonumber(ARGV[a + 8])
  local first = a + 9
  a = first + 2 * n
  local seen = nil
  if ikey ~= '' then seen = redis.call('GET', p .. ':idem:' .. ikey) end
  if seen then
    out[e] = {0, seen}
  else
    if n ~= 1 then
      local ek = p .. ':evt:' .. eid
      redis.call('HSET', ek, 'type', typ, 'data', data, 'test', test, 'createdAt', now, 'pending', n)
      if n == 0 then redis.call('PEXPIRE', ek, retention) end
    end
    for i = 0, n - 1 do
      local did, wid = ARGV[first + 2 * i], ARGV[first + 1 + 2 * i]
      local k = p .. ':dlv:' .. did
      local f = {'event', eid, 'webhook', wid, 'type', typ, 'test', test, 'status', 'pending',
        'attempts', '0', 'retryBase', '0', 'createdAt', now, 'updatedAt', now, 'due', now}
      if n == 1 then
        f[#f + 1] = 'solo'
        f[#f + 1] = '1'
        f[#f + 1] = 'data'
        f[#f + 1] = data
      end
      redis.call('HSET', k, unpack(f))
      queued[#queued + 1] = now
      queued[#queued + 1] = did
      -- History indexes: score 0, ordered by the time-sortable id.
      indexed[#indexed + 1] = 0
      indexed[#indexed + 1] = did
      local w = per_webhook[wid]
      if w == nil then w = {}; per_webhook[wid] = w end
      w[#w + 1] = did
    end
    if ikey ~= '' then
      redis.call('SET', p .. ':idem:' .. ikey, fingerprint .. '\n' .. answer, 'PX', ittl)
    end
    out[e] = {1}
  end
end
bulk('ZADD', p .. ':q:first', queued)
bulk('ZADD', p .. ':idx:dlv', indexed)
for wid, ids in pairs(per_webhook) do
  bulk('SADD', p .. ':wh:' .. wid .. ':pending', ids)
  local scored = {}
  for _, id in ipairs(ids) do
    scored[#scored + 1] = 0
    scored[#scored + 1] = id
  end
  bulk('ZADD', p .. ':idx:wh:' .. wid, scored)
end
return out
