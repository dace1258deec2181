-- Claims due deliveries of one shard under a lease.
-- ARGV: shard prefix, budget (max jobs), max retries among them, lease ms,
-- owner, nl, then nl groups (webhook id, rate-limit key, interval us,
-- tolerance us, at most): webhooks' rate limits to take for up to `at most`
-- of their deliveries handed out (rate.lua; standalone Redis only, where
-- every key is reachable).
-- Expired leases are put back in their queue first.
-- Returns {next_due_in_ms or -1, job, job, ...}; a job is
-- {id, event, webhook, type, test, attempts, retryBase, createdAt ('' when
-- the id tells), data, wait} where wait is its webhook's rate limit as
-- taken here (0: admitted, else µs) or -1 when not given
-- where data is the event's data the first time an event appears in the
-- batch, 0 when repeated, and nil when the event is gone. next_due is 0
-- when the budget was filled (more may be due).
-- The lease owner of each claimed delivery is kept in the shard's 'lo'
-- hash (id -> "owner solo"), so completions check it without reading the
-- delivery.
local p = ARGV[1]
local budget, max_retry = tonumber(ARGV[2]), tonumber(ARGV[3])
local lease_ms, owner = tonumber(ARGV[4]), ARGV[5]
local limits = {}
for i = 0, (tonumber(ARGV[6]) or 0) - 1 do
  local b = 7 + 5 * i
  limits[ARGV[b]] = {ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- Times go to Redis as integer strings (it would format numbers as doubles).
local nows, until_s = string.format('%d', now), string.format('%d', now + lease_ms)
local leases, qf, qr, lo = p .. ':leases', p .. ':q:first', p .. ':q:retry', p .. ':lo'

-- Expired leases: the claimer died or stalled. Due again now.
do
  local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', nows, 'LIMIT', 0, 500)
  if #expired > 0 then
    bulk('ZREM', leases, expired)
    bulk('HDEL', lo, expired)
    for _, id in ipairs(expired) do
      local k = p .. ':dlv:' .. id
      local cur = redis.call('HMGET', k, 'attempts', 'status')
      if cur[2] == 'pending' or cur[2] == 'failed' then
        redis.call('HSET', k, 'due', nows)
        if (tonumber(cur[1]) or 0) > 0 then
          redis.call('ZADD', qr, nows, id)
        else
          redis.call('ZADD', qf, nows, id)
        end
      end
    end
  end
end

-- First attempts get the budget less a quarter kept for retries; unused
-- shares go to the other kind.
local quota = 0
if budget > 0 then quota = math.min(max_retry, math.max(1, math.floor(budget / 4))) end
local firsts = {}
if budget - quota > 0 then
  firsts = redis.call('ZRANGEBYSCORE', qf, '-inf', nows, 'LIMIT', 0, budget - quota)
end
local retries = {}
local rlimit = math.min(max_retry, budget - #firsts)
if rlimit > 0 then
  retries = redis.call('ZRANGEBYSCORE', qr, '-inf', nows, 'LIMIT', 0, rlimit)
end
if #firsts == budget - quota and #firsts + #retries < budget then
  local more = redis.call('ZRANGEBYSCORE', qf, '-inf', nows, 'LIMIT', #firsts, budget - #firsts - #retries)
  for _, id in ipairs(more) do firsts[#firsts + 1] = id end
end
bulk('ZREM', qf, firsts)
bulk('ZREM', qr, retries)

local out = {-1}
local seen = {}
local leased, owners = {}, {}
-- One HGETALL per delivery: its record is small (enqueue.lua).
local function take(id)
  local k = p .. ':dlv:' .. id
  local h = hash_map(k)
  if h.status ~= 'pending' and h.status ~= 'failed' then
    return
  end
  leased[#leased + 1] = until_s
  leased[#leased + 1] = id
  owners[#owners + 1] = id
  owners[#owners + 1] = owner .. ' ' .. (h.solo or '0')
  -- Left out of a record when readers can tell (enqueue.lua): the event
  -- of a solo delivery shares its id's body; createdAt is the id's time.
  local eid = h.event or ('evt_' .. string.sub(id, 5))
  local data = 0
  if h.solo == '1' then
    data = data_of(h, p, id)
  elseif not seen[eid] then
    seen[eid] = true
    data = data_of(hash_map(p .. ':evt:' .. eid), p, eid)
  end
  local wait = -1
  local limit = limits[h.webhook or '']
  if limit and limit[4] > 0 then
    limit[4] = limit[4] - 1
    wait = rl_take(limit[1], limit[2], limit[3], now_us)
  end
  out[#out + 1] = {id, eid, h.webhook or '', h.type or '', h.test or '0', h.attempts or '0', h.retryBase or '0',
    h.createdAt or '', data, wait}
end
for _, id in ipairs(firsts) do take(id) end
for _, id in ipairs(retries) do take(id) end
bulk('ZADD', leases, leased)
bulk('HSET', lo, owners)
rl_flush(now_us)

if #firsts + #retries >= budget then
  out[1] = 0
else
  local next_due = nil
  for _, key in ipairs({qf, qr, leases}) do
    local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if head[2] then
      local s = tonumber(head[2])
      if next_due == nil or s < next_due then next_due = s end
    end
  end
  if next_due ~= nil then out[1] = math.max(0, next_due - now) end
end
return out
