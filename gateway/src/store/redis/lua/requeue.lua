-- Queues deliveries of one shard again: same id, fresh retry budget,
-- history kept.
-- ARGV: shard prefix, allowed statuses (comma-separated), then delivery ids.
-- Returns per id: 1 queued, -1 missing, -2 event gone, or the current
-- status (a string) when it is not one of the allowed ones.
local p, allowed = ARGV[1], ',' .. ARGV[2] .. ','
local t = redis.call('TIME')
local now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local k = p .. ':dlv:' .. id
  local f = redis.call('HMGET', k, 'status', 'attempts', 'event', 'webhook', 'solo')
  local solo = f[5] == '1'
  local ek = p .. ':evt:' .. (f[3] or '')
  if not f[1] then
    out[#out + 1] = -1
  elseif not string.find(allowed, ',' .. f[1] .. ',', 1, true) then
    out[#out + 1] = f[1]
  elseif (solo and not has_data(k, p, id)) or (not solo and not has_data(ek, p, f[3] or '')) then
    out[#out + 1] = -2
  else
    local attempts = tonumber(f[2]) or 0
    redis.call('HSET', k, 'status', 'pending', 'retryBase', string.format('%d', attempts), 'due', now, 'updatedAt', now)
    if solo then
      persist_record(k, p, id)
    else
      redis.call('PERSIST', k)
    end
    if attempts > 0 then
      redis.call('ZADD', p .. ':q:retry', now, id)
    else
      redis.call('ZADD', p .. ':q:first', now, id)
    end
    redis.call('SADD', p .. ':wh:' .. f[4] .. ':pending', id)
    redis.call('ZREM', p .. ':dead', id)
    if not solo then
      redis.call('HINCRBY', ek, 'pending', 1)
      persist_record(ek, p, f[3])
    end
    out[#out + 1] = 1
  end
end
return out
