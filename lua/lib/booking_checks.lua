-- place_refusal: why a new active booking may not take a place in a slot now, or false.
-- Used by create and reschedule, so that both refuse for exactly the same reasons,
-- in API.md's order. `holder` is the SHA-256 of the request's lock_key, or ''.
local function place_refusal(slot_key, lock_key, resource_key, environment, holder, now_ms)
  local slot = redis.call('HMGET', slot_key,
    'environment', 'status', 'start_ms', 'capacity', 'num_active_bookings')
  if slot[1] ~= environment then
    return 'SLOT_NOT_FOUND'
  end
  if slot[2] ~= 'active' then
    return 'SLOT_DISABLED'
  end
  local resource = redis.call('HMGET', resource_key, 'status', 'booking_disabled_before')
  if resource[1] ~= 'published' then
    return 'RESOURCE_DRAFT'
  end
  if tonumber(now_ms) >= tonumber(slot[3]) - tonumber(resource[2] or '0') * 1000 then
    return 'BOOKING_CLOSED'
  end
  local lock = redis.call('GET', lock_key)
  if lock and string.match(lock, '^(%x+):') ~= holder then
    return 'LOCKED_BY_OTHER'
  end
  if tonumber(slot[5]) >= tonumber(slot[4]) then
    return 'SLOT_FULL'
  end
  return false
end

-- move_counters: add `delta` to one counter of a slot and of its resource.
local function move_counters(slot_key, resource_key, field, delta)
  redis.call('HINCRBY', slot_key, field, delta)
  redis.call('HINCRBY', resource_key, field, delta)
end

-- settled_status: the status of a booking that lives, settled, on slot_id in this
-- environment; otherwise nil and what to answer: 'BOOKING_NOT_FOUND', or 'STALE' when
-- it is no longer on that slot or is being moved (the caller looks it up again).
local function settled_status(booking_key, environment, slot_id)
  local booking = redis.call('HMGET', booking_key,
    'environment', 'status', 'slot_id', 'moved_to_slot', 'pending_intent')
  if booking[1] ~= environment then
    return nil, 'BOOKING_NOT_FOUND'
  end
  if booking[3] ~= slot_id or (booking[4] or '') ~= '' or (booking[5] or '') ~= '' then
    return nil, 'STALE'
  end
  return booking[2]
end
