-- Disables a webhook (its receiver answered 410 Gone, or it kept failing):
-- its state, and an entry in the change log. Its waiting deliveries are
-- dead-lettered per shard afterwards (dead_letter.lua).
-- ARGV: prefix, webhook id, state JSON, log cap.
local p, wid, state, cap = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HSET', p .. ':whstate', wid, state)
log_change(p, wid, cap)
return 0
