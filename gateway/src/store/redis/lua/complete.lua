-- Applies a batch of outcomes.
-- ARGV: prefix, retention ms, n, then n groups of 9:
--   delivery id, owner, kind, delay ms, attempt JSON ('' = no attempt),
--   event id, webhook id, has payload ('1'/'0'), payload as sent
-- kind: s = succeeded, f = filtered, d = dead, r = retry after delay,
--       w = wait (defer) after delay without using the retry budget.
-- Returns one integer per outcome: 1 applied, 0 stale (attempt recorded only).
local p, retention, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Times go to Redis as integer strings (it would format numbers as doubles).
local nows = string.format('%d', now)
local leases, qf, qr = p .. ':leases', p .. ':q:first', p .. ':q:retry'
local final_status = {s = 'succeeded', f = 'filtered', d = 'dead'}
local out = {}
for i = 0, n - 1 do
  local b = 4 + 9 * i
  local id, owner, kind, delay = ARGV[b], ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 3])
  local attempt, eid, wid = ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
  local k = p .. ':dlv:' .. id
  local cur = redis.call('HMGET', k, 'lease', 'status', 'attempts', 'att')
  local applied = 0
  if cur[2] then
    -- Fields written with the status below (or alone, for a stale outcome):
    -- the attempt log ('att': attempt records as JSON lines, oldest first)
    -- and the payload as last sent.
    local extra = {}
    if attempt ~= '' then
      extra[#extra + 1] = 'att'
      if cur[4] then extra[#extra + 1] = cur[4] .. '\n' .. attempt else extra[#extra + 1] = attempt end
    end
    if ARGV[b + 7] == '1' then
      extra[#extra + 1] = 'payload'
      extra[#extra + 1] = ARGV[b + 8]
    end
    local live = cur[2] == 'pending' or cur[2] == 'failed'
    if live and (cur[1] == owner or cur[1] == '') then
      applied = 1
      -- Held under our lease: it is in the lease set only. Not leased
      -- (the lease expired and it was put back): it is in a due queue.
      if cur[1] == owner then
        redis.call('ZREM', leases, id)
      else
        redis.call('ZREM', qf, id)
        redis.call('ZREM', qr, id)
      end
      local attempts = tonumber(cur[3]) or 0
      if attempt ~= '' then attempts = attempts + 1 end
      if kind == 'r' or kind == 'w' then
        local status = cur[2]
        if kind == 'r' then status = 'failed' end
        local due = string.format('%d', now + delay)
        redis.call('HSET', k, 'status', status, 'attempts', string.format('%d', attempts), 'lease', '', 'due', due,
          'updatedAt', nows, unpack(extra))
        if attempts > 0 then
          redis.call('ZADD', qr, due, id)
        else
          redis.call('ZADD', qf, due, id)
        end
      else
        local status = final_status[kind] or 'dead'
        redis.call('HSET', k, 'status', status, 'attempts', string.format('%d', attempts), 'lease', '', 'due', '',
          'updatedAt', nows, unpack(extra))
        redis.call('SREM', p .. ':wh:' .. wid .. ':pending', id)
        if status == 'dead' then
          redis.call('ZADD', p .. ':dead', 0, id)
        end
        redis.call('PEXPIRE', k, retention)
        local ek = p .. ':evt:' .. eid
        if redis.call('HINCRBY', ek, 'pending', -1) <= 0 then
          redis.call('PEXPIRE', ek, retention)
        end
      end
    elseif #extra > 0 then
      redis.call('HSET', k, unpack(extra))
    end
  end
  out[#out + 1] = applied
end
return out
