-- History indexes. An index (`<base>` = S:ix for every delivery of a
-- shard, S:ix:wh:<webhook> for one webhook's) keeps delivery ids in
-- strings per time slice, `<base>:<slice>`, ids separated by spaces, and
-- the slices it has in a sorted set `<base>:dir` (members, score 0). A slice
-- is the first 8 characters of a delivery id's 26-character time-sortable
-- body (1.024 s), and the slice holds the rest of each id (18
-- characters); ids of any other form are kept whole in slice '~'. Readers
-- sort each slice's ids. This costs about 19 bytes per id, a sorted set
-- about 130. `S:ix:n` counts the ids in the shard's all-deliveries index.
local ix_pending, ix_counted = {}, {}

-- The slice of `id`, and what its slice holds of it.
local function ix_slice(id)
  if #id == 30 and string.sub(id, 1, 4) == 'dlv_' then
    return string.sub(id, 5, 12), string.sub(id, 13)
  end
  return '~', id
end

-- Adds `id` to the index `base` (written by ix_flush).
local function ix_push(base, id)
  local s, entry = ix_slice(id)
  local b = ix_pending[base]
  if b == nil then b = {}; ix_pending[base] = b end
  local l = b[s]
  if l == nil then l = {}; b[s] = l end
  l[#l + 1] = entry
end

-- Adds a delivery to its shard's index and its webhook's.
local function ix_add(p, id, wid)
  ix_push(p .. ':ix', id)
  ix_push(p .. ':ix:wh:' .. wid, id)
  ix_counted[p] = (ix_counted[p] or 0) + 1
end

-- Writes what ix_push gathered: one APPEND per slice, and the slice into
-- the directory when the APPEND made it.
local function ix_flush()
  for base, slices in pairs(ix_pending) do
    for s, ids in pairs(slices) do
      local text = table.concat(ids, ' ') .. ' '
      if redis.call('APPEND', base .. ':' .. s, text) == #text then
        redis.call('ZADD', base .. ':dir', 0, s)
      end
    end
  end
  for p, n in pairs(ix_counted) do
    redis.call('INCRBY', p .. ':ix:n', n)
  end
  ix_pending, ix_counted = {}, {}
end

-- The ids in slice `s`'s string, in a list.
local function ix_ids(text, s)
  local ids = {}
  local head = 'dlv_' .. s
  if s == '~' then head = '' end
  if text then
    for entry in string.gmatch(text, '%S+') do ids[#ids + 1] = head .. entry end
  end
  return ids
end

-- Writes slice `s` of `base` holding `ids` (removes it when empty).
local function ix_rewrite(base, s, ids)
  if #ids == 0 then
    redis.call('DEL', base .. ':' .. s)
    redis.call('ZREM', base .. ':dir', s)
  else
    local entries = {}
    for i, id in ipairs(ids) do
      local _, entry = ix_slice(id)
      entries[i] = entry
    end
    redis.call('SET', base .. ':' .. s, table.concat(entries, ' ') .. ' ')
  end
end
