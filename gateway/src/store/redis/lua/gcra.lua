-- Shared GCRA rate limiter (rate.lua in front).
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
local out = {}
for i = 0, n - 1 do
  local b = 2 + 3 * i
  local wait, tat = rl_take(ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), now)
  out[#out + 1] = wait
  out[#out + 1] = tat
  out[#out + 1] = now
end
rl_flush(now)
return out
