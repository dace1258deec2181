-- Imports events and deliveries of one shard (hookgate store import).
-- Events already stored are kept; deliveries already stored are skipped.
-- Imported deliveries keep their event in an event key (never 'solo').
-- ARGV: shard prefix, retention ms, ne, then ne groups of 5:
--   event id, type, data, test ('1'/'0'), createdAt;
-- then nd, then nd groups of 14:
--   delivery id, event id, webhook id, type, status, test, attempts,
--   retryBase, createdAt, updatedAt, due ('' = now), attempt records
--   (JSON lines), has payload ('1'/'0'), payload.
-- Returns {events added, deliveries added, deliveries skipped}.
local p, retention = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
local a = 3
local ne = tonumber(ARGV[a])
a = a + 1
local events_added = 0
for _ = 1, ne do
  local ek = p .. ':evt:' .. ARGV[a]
  if redis.call('EXISTS', ek) == 0 then
    local f = {'type', ARGV[a + 1], 'test', ARGV[a + 3], 'createdAt', ARGV[a + 4], 'pending', '0'}
    put_data(f, p, ARGV[a], ARGV[a + 2])
    redis.call('HSET', ek, unpack(f))
    -- Until a waiting delivery of it arrives, it expires like a finished one.
    expire_record(ek, p, ARGV[a], retention)
    events_added = events_added + 1
  end
  a = a + 5
end
local nd = tonumber(ARGV[a])
a = a + 1
local added, skipped = 0, 0
for _ = 1, nd do
  local id, eid, wid, typ, status, test = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local attempts, base, created, updated = ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  local due, att, has_payload, payload = ARGV[a + 10], ARGV[a + 11], ARGV[a + 12], ARGV[a + 13]
  a = a + 14
  local k = p .. ':dlv:' .. id
  if redis.call('EXISTS', k) == 1 then
    skipped = skipped + 1
  else
    local live = status ~= 'dead'
    if live and due == '' then due = now end
    if not live then due = '' end
    redis.call('HSET', k, 'event', eid, 'webhook', wid, 'type', typ, 'test', test, 'status', status,
      'attempts', attempts, 'retryBase', base, 'createdAt', created, 'updatedAt', updated, 'due', due)
    if att ~= '' then redis.call('HSET', k, 'att', att) end
    if has_payload == '1' then
      local f = {}
      put_chunks(f, 'p', payload)
      redis.call('HSET', k, unpack(f))
    end
    ix_add(p, id, wid)
    if live then
      if (tonumber(attempts) or 0) > 0 then
        redis.call('ZADD', p .. ':q:retry', due, id)
      else
        redis.call('ZADD', p .. ':q:first', due, id)
      end
      redis.call('SADD', p .. ':wh:' .. wid .. ':pending', id)
      local ek = p .. ':evt:' .. eid
      redis.call('HINCRBY', ek, 'pending', 1)
      persist_record(ek, p, eid)
    else
      redis.call('ZADD', p .. ':dead', 0, id)
      redis.call('PEXPIRE', k, retention)
    end
    added = added + 1
  end
end
ix_flush()
return {events_added, added, skipped}
