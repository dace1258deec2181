-- Long values in a hash as 64-byte chunks, so the hash keeps Redis's
-- compact (listpack) encoding, where every value must fit in 64 bytes.
-- A value under `name` of at most 64 bytes is one field, `name`; a longer
-- one is fields `<c>0`, `<c>1`, ... and their count `<c>n`.
local CHUNK = 64
-- Chunk numbers as strings: Lua would format a number joined to a string
-- with sprintf('%.14g') each time, a visible share of Redis's CPU.
local CHUNK_NUMBERS = {'0','1','2','3','4','5','6','7','8','9','10','11','12','13','14','15','16','17','18','19','20','21','22','23','24','25','26','27','28','29','30','31','32','33','34','35','36','37','38','39','40','41','42','43','44','45','46','47','48','49','50','51','52','53','54','55','56','57','58','59','60','61','62','63'}

-- Chunk number `i` as a string.
local function chunk_no(i)
  return CHUNK_NUMBERS[i + 1] or string.format('%d', i)
end

-- Appends fields `<c>0`, ... and `<c>n` that store `value` to the flat
-- list `f` (for a value written more than once: the count says which
-- chunks are current).
local function put_chunks(f, c, value)
  local n = 0
  for i = 1, #value, CHUNK do
    f[#f + 1] = c .. chunk_no(n)
    f[#f + 1] = string.sub(value, i, i + CHUNK - 1)
    n = n + 1
  end
  f[#f + 1] = c .. 'n'
  f[#f + 1] = chunk_no(n)
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
    local part = h[c .. chunk_no(i)]
    if not part then return false end
    parts[#parts + 1] = part
  end
  return table.concat(parts)
end
