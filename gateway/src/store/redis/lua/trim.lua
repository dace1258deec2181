-- Keeps at most `cap` deliveries in one shard's history: the oldest
-- finished ones (succeeded or filtered) past the cap are removed with their
-- records and index entries; waiting (pending, failed) and dead deliveries
-- are never removed.
-- ARGV: shard prefix, cap, slices (index slices looked at per call at
-- most), after ('' or the slice the previous call ended on: slices up to
-- it hold only kept deliveries).
-- Returns {removed, next} where next is the slice to go on after, or ''
-- when the shard is within its cap or at the end of its index.
local p, cap, max_slices, after = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local base = p .. ':ix'
local over = (tonumber(redis.call('GET', base .. ':n')) or 0) - cap
if over <= 0 then return {0, ''} end
local from = '-'
if after ~= '' then from = '(' .. after end
local slices = redis.call('ZRANGEBYLEX', base .. ':dir', from, '+', 'LIMIT', 0, max_slices)
local removed, dropped, last = 0, 0, ''
local per_webhook = {}
for _, s in ipairs(slices) do
  if removed >= over then break end
  local ids = ix_ids(redis.call('GET', base .. ':' .. s), s)
  table.sort(ids)
  local kept = {}
  for _, id in ipairs(ids) do
    if removed >= over then
      kept[#kept + 1] = id
    else
      local k = p .. ':dlv:' .. id
      local f = redis.call('HMGET', k, 'status', 'webhook')
      if not f[1] then
        dropped = dropped + 1
      elseif f[1] == 'succeeded' or f[1] == 'filtered' then
        redis.call('UNLINK', k, data_key(p, id))
        dropped = dropped + 1
        removed = removed + 1
        local w = per_webhook[f[2]]
        if w == nil then w = {}; per_webhook[f[2]] = w end
        local l = w[s]
        if l == nil then l = {}; w[s] = l end
        l[id] = true
      else
        kept[#kept + 1] = id
      end
    end
  end
  if #kept < #ids then ix_rewrite(base, s, kept) end
  last = s
end
redis.call('DECRBY', base .. ':n', dropped)
-- The webhooks' indexes lose the removed ids too.
for wid, slices_of in pairs(per_webhook) do
  local wbase = p .. ':ix:wh:' .. wid
  for s, gone in pairs(slices_of) do
    local rest = {}
    for _, id in ipairs(ix_ids(redis.call('GET', wbase .. ':' .. s), s)) do
      if not gone[id] then rest[#rest + 1] = id end
    end
    ix_rewrite(wbase, s, rest)
  end
end
if removed >= over or #slices < max_slices then last = '' end
return {removed, last}
