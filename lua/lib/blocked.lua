-- blocked_now: whether a lock keeps every free place of an open slot from a new booking
-- at now_ms (the service's clock, as the slot's view compares it). The one place that
-- says so: lists and counts of available slots ask it for each live lock.
local function blocked_now(lock_key, now_ms)
  return redis.call('PEXPIRETIME', lock_key) > tonumber(now_ms)
end
