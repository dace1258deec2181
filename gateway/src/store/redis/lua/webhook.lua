-- Adds, replaces or removes one API webhook, and logs the change.
-- ARGV: prefix, op ('insert' | 'replace' | 'delete'), webhook id, JSON,
-- clear state ('1': also drop its 410 state and breaker), log cap.
-- Returns 1 if done, 0 if not (insert: the id is taken; replace, delete:
-- there is no such webhook).
local p, op, wid, json, clear, cap = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local hooks = p .. ':webhooks'
if op == 'insert' then
  if redis.call('HSETNX', hooks, wid, json) == 0 then
    return 0
  end
elseif op == 'replace' then
  -- Only replace an existing entry: a concurrent DELETE wins.
  if redis.call('HEXISTS', hooks, wid) == 0 then
    return 0
  end
  redis.call('HSET', hooks, wid, json)
  if clear == '1' then
    redis.call('HDEL', p .. ':whstate', wid)
    redis.call('HDEL', p .. ':circuit', wid)
  end
else
  local removed = redis.call('HDEL', hooks, wid)
  local others = redis.call('HDEL', p .. ':whstate', wid) + redis.call('HDEL', p .. ':circuit', wid)
  if removed + others == 0 then
    return 0
  end
  log_change(p, wid, cap)
  return removed
end
log_change(p, wid, cap)
return 1
