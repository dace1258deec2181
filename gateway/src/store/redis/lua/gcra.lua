-- Shared GCRA rate limiter; mirrors ratelimit.rs `Gcra::check`.
-- ARGV: prefix, n, then n triples (key, interval us, tolerance us).
-- Returns three integers per request: 0 if admitted (else microseconds to
-- wait), the theoretical arrival time after the check, and now (both µs).
local p, n = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i = 0, n - 1 do
  local b = 3 + 3 * i
  local k = p .. ':rl:' .. ARGV[b]
  local interval, tolerance = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local tat = tonumber(redis.call('GET', k)) or now
  if tat < now then tat = now end
  if tat - now <= tolerance then
    local new_tat = tat + interval
    local ttl_ms = math.ceil((new_tat - now) / 1000) + 1000
    redis.call('SET', k, string.format('%.0f', new_tat), 'PX', ttl_ms)
    out[#out + 1] = 0
    out[#out + 1] = new_tat
  else
    out[#out + 1] = tat - tolerance - now
    out[#out + 1] = tat
  end
  out[#out + 1] = now
end
return out
