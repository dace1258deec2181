-- The webhook change log, put in front of every script that changes a
-- webhook, its state or its breaker (see store/changes.rs). A change takes
-- the next number of P:webhooks:version and adds one entry to the sorted
-- set P:webhooks:log: score = that number, member = "seq:nonce:webhook id"
-- (nonce = the server clock in µs, so a number reused after a failover lost
-- writes is told apart from the entry a gateway saw). Only the last `cap`
-- entries are kept.
local function log_change(p, wid, cap)
  local seq = redis.call('INCR', p .. ':webhooks:version')
  local t = redis.call('TIME')
  local member = string.format('%d:%s%06d:%s', seq, t[1], tonumber(t[2]), wid)
  redis.call('ZADD', p .. ':webhooks:log', seq, member)
  redis.call('ZREMRANGEBYSCORE', p .. ':webhooks:log', '-inf', seq - tonumber(cap))
  return seq
end
