-- Shared GCRA rate limiter; mirrors ratelimit.rs `Gcra::check`.
-- ARGV: n, then n triples (key name, interval us, tolerance us); on a
-- cluster every key of one call is in the slot of KEYS[1].
-- Requests are decided in order, as if made one after another; a key that
-- appears many times (one request per delivery of a webhook) is read once
-- and written once.
-- Returns three integers per request: 0 if admitted (else microseconds to
-- wait), the theoretical arrival time after the check, and now (both µs).
local n = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats, dirty = {}, {}
local out = {}
for i = 0, n - 1 do
  local b = 2 + 3 * i
  local key = ARGV[b]
  local interval, tolerance = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local tat = tats[key]
  if tat == nil then tat = tonumber(redis.call('GET', key)) or now end
  if tat < now then tat = now end
  if tat - now <= tolerance then
    tat = tat + interval
    dirty[key] = true
    out[#out + 1] = 0
  else
    out[#out + 1] = tat - tolerance - now
  end
  tats[key] = tat
  out[#out + 1] = tat
  out[#out + 1] = now
end
for key in pairs(dirty) do
  local tat = tats[key]
  redis.call('SET', key, string.format('%.0f', tat), 'PX',
    string.format('%d', math.ceil((tat - now) / 1000) + 1000))
end
return out
