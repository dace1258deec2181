-- Writes imported webhooks (`hookgate store import`), each with its 410
-- state or none, logging one change per webhook.
-- ARGV: prefix, log cap, then per webhook: id, JSON, state JSON ('' = none).
local p, cap = ARGV[1], ARGV[2]
for i = 3, #ARGV, 3 do
  local wid, json, state = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  redis.call('HSET', p .. ':webhooks', wid, json)
  if state == '' then
    redis.call('HDEL', p .. ':whstate', wid)
  else
    redis.call('HSET', p .. ':whstate', wid, state)
  end
  log_change(p, wid, cap)
end
return (#ARGV - 2) / 3
