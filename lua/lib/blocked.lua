-- blocked_now: whether nothing of an open slot is free for a new booking at now_ms: a
-- whole-slot lock running then (the service's clock, as the slot's view compares it), or
-- partial holds taking every place left (places.lua's count of free places, the one
-- answer). Lists and counts of available slots ask it for each slot with a live lock or
-- hold. Needs places.lua.
local function blocked_now(slot_key, lock_key, held_key, now_ms)
  local whole_locked = redis.call('PEXPIRETIME', lock_key) > tonumber(now_ms)
  local slot = redis.call('HMGET', slot_key, 'capacity', 'num_active_bookings')
  local _, held = live_holds(held_key, now_ms)
  return free_places_of(slot[1] or 0, slot[2] or 0, whole_locked, held) <= 0
end
