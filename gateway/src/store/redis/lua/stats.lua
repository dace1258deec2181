-- Adds statistics rows (stats.rs): each row to its scope's minute and hour
-- hash, and the scope to the hour's set of active webhooks.
-- ARGV: prefix, minute ttl s, hour ttl s, f (fields), f field names,
-- n (rows), then n times: scope, minute, f values (zeros skipped).
local p = ARGV[1]
local mttl, httl = tonumber(ARGV[2]), tonumber(ARGV[3])
local f = tonumber(ARGV[4])
local names = {}
for i = 1, f do names[i] = ARGV[4 + i] end
local n = tonumber(ARGV[5 + f])
local at = 6 + f
for _ = 1, n do
  local scope, minute = ARGV[at], tonumber(ARGV[at + 1])
  local hour = math.floor(minute / 60)
  local mkey = p .. ':st:m:' .. minute .. ':' .. scope
  local hkey = p .. ':st:h:' .. hour .. ':' .. scope
  for i = 1, f do
    local v = tonumber(ARGV[at + 1 + i])
    if v ~= 0 then
      redis.call('HINCRBY', mkey, names[i], v)
      redis.call('HINCRBY', hkey, names[i], v)
    end
  end
  redis.call('EXPIRE', mkey, mttl)
  redis.call('EXPIRE', hkey, httl)
  if scope ~= '*' then
    local ids = p .. ':st:ids:' .. hour
    redis.call('SADD', ids, scope)
    redis.call('EXPIRE', ids, httl)
  end
  at = at + 2 + f
end
return n
