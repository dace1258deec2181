-- GCRA, mirrors ratelimit.rs `Gcra::check`. Decisions are made in order,
-- as if one after another; a key used many times in one script is read
-- once and written once (rl_flush).
local rl_tats, rl_dirty = {}, {}
-- Checks one request at now_us (µs) and takes the slot if allowed.
-- Returns 0 if admitted (else µs to wait) and the theoretical arrival time.
local function rl_take(key, interval, tolerance, now_us)
  local tat = rl_tats[key]
  if tat == nil then tat = tonumber(redis.call('GET', key)) or now_us end
  if tat < now_us then tat = now_us end
  local wait = 0
  if tat - now_us <= tolerance then
    tat = tat + interval
    rl_dirty[key] = true
  else
    wait = tat - tolerance - now_us
  end
  rl_tats[key] = tat
  return wait, tat
end
-- Writes every state changed (kept until its bucket is full again, plus a
-- second).
local function rl_flush(now_us)
  for key in pairs(rl_dirty) do
    local tat = rl_tats[key]
    redis.call('SET', key, string.format('%.0f', tat), 'PX',
      string.format('%d', math.ceil((tat - now_us) / 1000) + 1000))
  end
end
