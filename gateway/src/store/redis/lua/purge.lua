-- Drops history index slices older than retention (their records have
-- expired) from one index of one shard.
-- ARGV: shard prefix, index base (S:ix or S:ix:wh:<webhook>), cutoff slice
-- (slices below it go), max slices per call.
-- Returns how many slices went.
local p, base, cutoff, max = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local slices = redis.call('ZRANGEBYLEX', base .. ':dir', '-', '(' .. cutoff, 'LIMIT', 0, max)
local counted = base == p .. ':ix'
local dropped = 0
for _, s in ipairs(slices) do
  if counted then dropped = dropped + #ix_ids(redis.call('GET', base .. ':' .. s), s) end
  redis.call('UNLINK', base .. ':' .. s)
end
bulk('ZREM', base .. ':dir', slices)
if dropped > 0 then redis.call('DECRBY', base .. ':n', dropped) end
return #slices
