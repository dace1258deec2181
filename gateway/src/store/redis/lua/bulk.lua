-- Variadic commands over long lists, in chunks (Lua's unpack has a limit).
-- items is a flat list; for pairs (ZADD score member) keep chunks even.
local function bulk(cmd, key, items)
  local i = 1
  while i <= #items do
    local j = math.min(i + 999, #items)
    redis.call(cmd, key, unpack(items, i, j))
    i = j + 1
  end
end
