-- Long values in a hash as 64-byte chunks, so the hash keeps Redis's
-- compact (listpack) encoding, where every value must fit in 64 bytes.
-- A value under `name` of at most 64 bytes is one field, `name`; a longer
-- one is fields `<c>0`, `<c>1`, ... and their count `<c>n`.
local CHUNK = 64

-- Appends fields `<c>0`, ... and `<c>n` that store `value` to the flat
-- list `f` (for a value written more than once: the count says which
-- chunks are current).
local function put_chunks(f, c, value)
  local n = 0
  for i = 1, #value, CHUNK do
    f[#f + 1] = c .. n
    f[#f + 1] = string.sub(value, i, i + CHUNK - 1)
    n = n + 1
  end
  f[#f + 1] = c .. 'n'
  f[#f + 1] = string.format('%d', n)
end

-- Appends the fields that store `value` (written once) to `f`.
local function put_chunked(f, name, c, value)
  if #value <= CHUNK then
    f[#f + 1] = name
    f[#f + 1] = value
  else
    put_chunks(f, c, value)
  end
end

-- Whether hash `k` stores a value under `name`.
local function has_chunked(k, name, c)
  return redis.call('HEXISTS', k, name) == 1 or redis.call('HEXISTS', k, c .. 'n') == 1
end

-- Hash `k` as a table, field -> value (empty when there is no such key).
local function hash_map(k)
  local flat = redis.call('HGETALL', k)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- The value stored under `name` in `h` (a hash_map), or false.
local function chunked_in(h, name, c)
  local n = tonumber(h[c .. 'n'])
  if not n then return h[name] or false end
  local parts = {}
  for i = 0, n - 1 do
    local part = h[c .. i]
    if not part then return false end
    parts[#parts + 1] = part
  end
  return table.concat(parts)
end
