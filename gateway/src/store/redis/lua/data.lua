-- An event's data, held by its record: the event's hash, or the delivery
-- that is the event's only one ('solo'). Up to 64 bytes it is the record's
-- field `data`. Longer, it is the string key `<p>:dat:<record id>`, which
-- expires, persists and goes with its record. A string is one value to
-- write and to read back, where 64-byte chunks in the hash (kept for its
-- compact encoding) were 16 fields per KiB to pass through Lua each way.
-- Records written before kept longer data in chunks (`d0`, `d1`, ...,
-- `dn`, chunks.lua); they are read as they are.

-- The key of the data of the record with id `id`.
local function data_key(p, id)
  return p .. ':dat:' .. id
end

-- Stores `data` for the record `id` whose fields are being built in the
-- flat list `f`.
local function put_data(f, p, id, data)
  if #data <= CHUNK then
    f[#f + 1] = 'data'
    f[#f + 1] = data
  else
    redis.call('SET', data_key(p, id), data)
  end
end

-- The data of record `id` whose fields are `h` (a hash_map), or false.
local function data_of(h, p, id)
  if h.data then return h.data end
  if h.dn then return chunked_in(h, 'data', 'd') end
  return redis.call('GET', data_key(p, id))
end

-- Whether record `id` (key `k`) has its data.
local function has_data(k, p, id)
  return has_chunked(k, 'data', 'd') or redis.call('EXISTS', data_key(p, id)) == 1
end

-- Record `k` (id `id`) and its data expire `ms` from now.
local function expire_record(k, p, id, ms)
  redis.call('PEXPIRE', k, ms)
  redis.call('PEXPIRE', data_key(p, id), ms)
end

-- Record `k` (id `id`) and its data are kept again.
local function persist_record(k, p, id)
  redis.call('PERSIST', k)
  redis.call('PERSIST', data_key(p, id))
end
