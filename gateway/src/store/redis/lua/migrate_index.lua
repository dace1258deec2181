-- Moves entries of a history index of an earlier version (a sorted set,
-- S:idx:dlv or S:idx:wh:<webhook>) into the sliced index (index.lua).
-- ARGV: shard prefix, old key, new index base, how many at most.
-- Returns how many moved (0 when the old key is gone).
local p, old, base, max = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ids = redis.call('ZRANGE', old, 0, max - 1)
for _, id in ipairs(ids) do ix_push(base, id) end
if base == p .. ':ix' then ix_counted[p] = #ids end
ix_flush()
if #ids > 0 then redis.call('ZREMRANGEBYRANK', old, 0, #ids - 1) end
return #ids
