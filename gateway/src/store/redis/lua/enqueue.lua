-- Stores a batch of events of one shard, each with all its deliveries, due
-- now. Each event is all-or-nothing; the batch is one atomic script.
-- ARGV: shard prefix, retention ms, deadline (Redis ms; '0': none),
-- m (events), then m groups:
--   event id, type, data, test ("1"/"0"),
--   idempotency key ('' for none), fingerprint, answer, key ttl ms,
--   lease owner ('' for none), lease ms,
--   the caller's API rate limit: key ('' for none), interval us,
--   tolerance us (standalone Redis only, as below),
--   n, then n pairs (delivery id, webhook id),
--   nl (0 or n), then nl triples (rate-limit key, interval us, tolerance
--   us): the deliveries' rate limits, taken here for leased deliveries
--   (rate.lua; standalone Redis only, where every key is reachable).
-- With a lease owner, the event's deliveries are leased to it (as a claim
-- would: 'leases' and 'lo') instead of queued: the gateway that accepted
-- the event starts their first attempts without a claim. If it never
-- does, the lease expires and a claim hands them out like any other.
-- The only delivery of an event holds the event's data itself ('solo'):
-- one key per event. A delivery record leaves out what readers can tell
-- without it: `event` of a solo delivery (its id says), `createdAt` (the
-- id's time), `test` and `retryBase` when 0. Data longer than 64 bytes
-- is a key of its own (data.lua), so the record stays in Redis's compact
-- hash encoding. Queue and index
-- entries are written with one command per batch (per webhook for the
-- per-webhook keys).
-- The caller's API rate limit is taken first, for every event given one:
-- an event over it is answered {2} and nothing of it is written.
-- Returns one array per event: {0, "fingerprint\nanswer"} when the
-- idempotency key was seen before (nothing written), else {1, waits...}
-- with one wait per rate limit given (0: admitted, else µs); each ends
-- with the API rate limit's state when one was given, as gcra.lua answers
-- it (wait µs or 0, tat µs, now µs). Then
-- Redis's time (ms). Past the deadline it writes nothing and answers an
-- error (LATE): the gateway has stopped waiting and answered 503.
local p, retention, deadline, m = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local t = redis.call('TIME')
-- Times as integer strings, formatted once: Redis would format every Lua
-- number argument as a double.
local now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
if deadline ~= '0' and tonumber(now) > tonumber(deadline) then
  return redis.error_reply('LATE the batch reached Redis after its deadline; nothing was written')
end
local queued, per_webhook, leased, owners = {}, {}, {}, {}
local out = {}
local a = 5
for e = 1, m do
  local eid, typ, data, test = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local ikey, fingerprint, answer, ittl = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  local lowner, lms = ARGV[a + 8], ARGV[a + 9]
  local akey, aint, atol = ARGV[a + 10], tonumber(ARGV[a + 11]), tonumber(ARGV[a + 12])
  local n = tonumber(ARGV[a + 13])
  local first = a + 14
  local nl = tonumber(ARGV[first + 2 * n])
  local limits = first + 2 * n + 1
  a = limits + 3 * nl
  local await, atat = 0, 0
  if akey ~= '' then
    await, atat = rl_take(akey, aint, atol, now_us)
  end
  local seen = nil
  if await == 0 and ikey ~= '' then seen = redis.call('GET', p .. ':idem:' .. ikey) end
  if await > 0 then
    out[e] = {2}
  elseif seen then
    out[e] = {0, seen}
  else
    if n ~= 1 then
      local ek = p .. ':evt:' .. eid
      local f = {'type', typ, 'test', test, 'createdAt', now, 'pending', n}
      put_data(f, p, eid, data)
      redis.call('HSET', ek, unpack(f))
      if n == 0 then
        expire_record(ek, p, eid, retention)
      end
    end
    for i = 0, n - 1 do
      local did, wid = ARGV[first + 2 * i], ARGV[first + 1 + 2 * i]
      local k = p .. ':dlv:' .. did
      local f = {'webhook', wid, 'type', typ, 'status', 'pending', 'attempts', '0', 'updatedAt', now, 'due', now}
      if test ~= '0' then
        f[#f + 1] = 'test'
        f[#f + 1] = test
      end
      if n == 1 then
        f[#f + 1] = 'solo'
        f[#f + 1] = '1'
        put_data(f, p, did, data)
      else
        f[#f + 1] = 'event'
        f[#f + 1] = eid
      end
      redis.call('HSET', k, unpack(f))
      if lowner ~= '' then
        leased[#leased + 1] = string.format('%d', tonumber(now) + tonumber(lms))
        leased[#leased + 1] = did
        owners[#owners + 1] = did
        owners[#owners + 1] = lowner .. (n == 1 and ' 1' or ' 0')
      else
        queued[#queued + 1] = now
        queued[#queued + 1] = did
      end
      ix_add(p, did, wid)
      local w = per_webhook[wid]
      if w == nil then w = {}; per_webhook[wid] = w end
      w[#w + 1] = did
    end
    if ikey ~= '' then
      redis.call('SET', p .. ':idem:' .. ikey, fingerprint .. '\n' .. answer, 'PX', ittl)
    end
    local done = {1}
    for i = 0, nl - 1 do
      local b = limits + 3 * i
      done[#done + 1] = rl_take(ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), now_us)
    end
    out[e] = done
  end
  if akey ~= '' then
    local r = out[e]
    r[#r + 1] = await
    r[#r + 1] = atat
    r[#r + 1] = now_us
  end
end
bulk('ZADD', p .. ':q:first', queued)
bulk('ZADD', p .. ':leases', leased)
bulk('HSET', p .. ':lo', owners)
rl_flush(now_us)
ix_flush()
for wid, ids in pairs(per_webhook) do
  bulk('SADD', p .. ':wh:' .. wid .. ':pending', ids)
end
out[m + 1] = now
return out
