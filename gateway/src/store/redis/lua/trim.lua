-- Keeps at most `cap` deliveries in one shard's history: the oldest
-- finished ones (succeeded or filtered) past the cap are removed with their
-- records; waiting (pending, failed) and dead deliveries are never removed.
-- ARGV: shard prefix, cap, examine (ids looked at per call at most),
-- offset (oldest ids to pass over: ones earlier calls kept).
-- Returns {removed, examined, kept}.
local p, cap, examine, offset = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local idx = p .. ':idx:dlv'
local over = redis.call('ZCARD', idx) - cap
if over <= 0 then return {0, 0, 0} end
local ids = redis.call('ZRANGE', idx, offset, offset + examine - 1)
local gone, per_webhook = {}, {}
local removed, examined = 0, 0
for _, id in ipairs(ids) do
  if removed >= over then break end
  examined = examined + 1
  local k = p .. ':dlv:' .. id
  local f = redis.call('HMGET', k, 'status', 'webhook')
  if not f[1] then
    gone[#gone + 1] = id
  elseif f[1] == 'succeeded' or f[1] == 'filtered' then
    redis.call('UNLINK', k)
    gone[#gone + 1] = id
    local w = per_webhook[f[2]]
    if w == nil then w = {}; per_webhook[f[2]] = w end
    w[#w + 1] = id
    removed = removed + 1
  end
end
-- Ids gone or removed leave the index; the rest were kept.
bulk('ZREM', idx, gone)
for wid, list in pairs(per_webhook) do
  bulk('ZREM', p .. ':idx:wh:' .. wid, list)
end
return {removed, examined, examined - #gone}
