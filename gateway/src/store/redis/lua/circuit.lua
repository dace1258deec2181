-- Swaps a webhook's circuit breaker state if it is still what the caller
-- saw, and logs the change so every gateway reloads it.
-- ARGV: prefix, webhook id, expected JSON ('' = closed), new JSON ('' = closed), log cap.
-- Returns 1 if swapped, 0 if the state had changed.
local p, wid, expected, new, cap = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = p .. ':circuit'
local cur = redis.call('HGET', key, wid)
if not cur then cur = '' end
if cur ~= expected then
  return 0
end
if new == '' then
  redis.call('HDEL', key, wid)
else
  redis.call('HSET', key, wid, new)
end
log_change(p, wid, cap)
return 1
