-- Applies a batch of outcomes of one shard.
-- ARGV: shard prefix, retention ms, n, then n groups of 10:
--   delivery id, owner, kind, delay ms, attempt JSON ('' = no attempt),
--   attempt number, event id, webhook id, has payload ('1'/'0'), payload
-- kind: s = succeeded, f = filtered, d = dead, r = retry after delay,
--       w = wait (defer) after delay without using the retry budget.
-- Returns one integer per outcome: 1 applied, 0 stale (attempt recorded only).
-- A payload a plugin made is stored in chunks 'p<i>' (chunks.lua).
-- Attempt records are fields of the delivery: 'a<number>' for attempts
-- made under a current lease, 'x<ms>.<i>' for stale ones (attempts made
-- after the lease was lost); readers sort them by start time.
-- A final outcome with an attempt under our lease (the common case) is
-- written without reading the delivery: the lease hash ('lo') says the
-- delivery is ours and whether it holds its event's data ('solo').
local p, retention, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Times go to Redis as integer strings (it would format numbers as doubles).
local nows = string.format('%d', now)
local leases, qf, qr, lo = p .. ':leases', p .. ':q:first', p .. ':q:retry', p .. ':lo'
local final_status = {s = 'succeeded', f = 'filtered', d = 'dead'}
local ids = {}
for i = 0, n - 1 do ids[#ids + 1] = ARGV[4 + 10 * i] end
local holders = {}
if n > 0 then holders = redis.call('HMGET', lo, unpack(ids)) end
local released, done_by_webhook, dead = {}, {}, {}
local out = {}

-- A final outcome: out of the pending set, expiring, its event's count.
local function finish(id, k, status, wid, eid, solo)
  local w = done_by_webhook[wid]
  if w == nil then w = {}; done_by_webhook[wid] = w end
  w[#w + 1] = id
  if status == 'dead' then
    dead[#dead + 1] = 0
    dead[#dead + 1] = id
  end
  if solo then
    expire_record(k, p, id, retention)
  else
    redis.call('PEXPIRE', k, retention)
    local ek = p .. ':evt:' .. eid
    if redis.call('HINCRBY', ek, 'pending', -1) <= 0 then
      expire_record(ek, p, eid, retention)
    end
  end
end

for i = 0, n - 1 do
  local b = 4 + 10 * i
  local id, owner, kind, delay = ARGV[b], ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 3])
  local attempt, number, eid, wid = ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7]
  local k = p .. ':dlv:' .. id
  local holder = holders[i + 1]
  local ours = holder and string.sub(holder, 1, #owner + 1) == owner .. ' '
  local extra = {}
  if ARGV[b + 8] == '1' then put_chunks(extra, 'p', ARGV[b + 9]) end
  local applied = 0
  if ours and attempt ~= '' and final_status[kind] then
    -- Fast path: leased to us, so live; the attempt made is number 'number'.
    applied = 1
    released[#released + 1] = id
    local status = final_status[kind]
    redis.call('HSET', k, 'status', status, 'attempts', number, 'due', '', 'updatedAt', nows,
      'a' .. number, attempt, unpack(extra))
    finish(id, k, status, wid, eid, string.sub(holder, -1) == '1')
  else
    local cur = redis.call('HMGET', k, 'status', 'attempts', 'solo')
    if cur[1] then
      local live = cur[1] == 'pending' or cur[1] == 'failed'
      if live and (ours or not holder) then
        applied = 1
        -- Held under our lease: it is in the lease set only. Not leased
        -- (the lease expired and it was put back): it is in a due queue.
        if ours then
          released[#released + 1] = id
        else
          redis.call('ZREM', qf, id)
          redis.call('ZREM', qr, id)
        end
        local attempts = tonumber(cur[2]) or 0
        if attempt ~= '' then
          attempts = attempts + 1
          extra[#extra + 1] = 'a' .. attempts
          extra[#extra + 1] = attempt
        end
        local count = string.format('%d', attempts)
        if kind == 'r' or kind == 'w' then
          local status = cur[1]
          if kind == 'r' then status = 'failed' end
          local due = string.format('%d', now + delay)
          redis.call('HSET', k, 'status', status, 'attempts', count, 'due', due, 'updatedAt', nows, unpack(extra))
          if attempts > 0 then
            redis.call('ZADD', qr, due, id)
          else
            redis.call('ZADD', qf, due, id)
          end
        else
          local status = final_status[kind] or 'dead'
          redis.call('HSET', k, 'status', status, 'attempts', count, 'due', '', 'updatedAt', nows, unpack(extra))
          finish(id, k, status, wid, eid, cur[3] == '1')
        end
      else
        -- Stale: the attempt is recorded, nothing else changes.
        if attempt ~= '' then
          extra[#extra + 1] = 'x' .. nows .. '.' .. i
          extra[#extra + 1] = attempt
        end
        if #extra > 0 then redis.call('HSET', k, unpack(extra)) end
      end
    end
  end
  out[#out + 1] = applied
end
bulk('ZREM', leases, released)
bulk('HDEL', lo, released)
for wid, done in pairs(done_by_webhook) do
  bulk('SREM', p .. ':wh:' .. wid .. ':pending', done)
end
bulk('ZADD', p .. ':dead', dead)
return out
