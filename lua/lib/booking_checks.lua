-- lock_refusal: the last two checks of place_refusal (below), also enable's: E050 while
-- another key locks the whole slot; E049 without a free place (a place held by another
-- key's partial hold is not free), unless the holder's own running hold has one, which it
-- then returns after false.
local function lock_refusal(capacity, num_active_bookings, lock_key, held_key, holder, now_ms)
  local lock = redis.call('GET', lock_key)
  if lock and string.match(lock, '^(%x+):') ~= holder then
    return 'LOCKED_BY_OTHER'
  end
  local holds, held = live_holds(held_key, now_ms)
  local own = holder ~= '' and holds[holder] or nil
  if own then
    return false, own
  end
  if free_places_of(capacity, num_active_bookings, false, held) <= 0 then
    return 'SLOT_FULL'
  end
  return false
end

-- place_refusal: why a new active booking may not take a place in a slot now, or false.
-- Used by create, enable and the reschedules, so that all refuse for exactly the same
-- reasons, in API.md's order. `holder` is the SHA-256 of the request's lock_key, or ''.
-- On success it also returns the holder's running partial hold on the slot (or nil): the
-- booking then takes one of those places (take_held_place), and needs no free one.
-- (Scripts that include this include places.lua before it.)
-- place_refusal_of takes the slot's fields a script has already read (a table with at
-- least environment, status, start_ms, capacity, num_active_bookings); place_refusal,
-- below it, reads them itself.
local function place_refusal_of(slot, lock_key, held_key, resource_key, environment, holder, now_ms)
  if slot.environment ~= environment then
    return 'SLOT_NOT_FOUND'
  end
  if slot.status ~= 'active' then
    return 'SLOT_DISABLED'
  end
  local resource = redis.call('HMGET', resource_key, 'status', 'booking_disabled_before')
  if resource[1] ~= 'published' then
    return 'RESOURCE_DRAFT'
  end
  if tonumber(now_ms) >= tonumber(slot.start_ms) - tonumber(resource[2] or '0') * 1000 then
    return 'BOOKING_CLOSED'
  end
  return lock_refusal(slot.capacity, slot.num_active_bookings, lock_key, held_key, holder, now_ms)
end

local function place_refusal(slot_key, lock_key, held_key, resource_key, environment, holder, now_ms)
  local slot = redis.call('HMGET', slot_key,
    'environment', 'status', 'start_ms', 'capacity', 'num_active_bookings')
  local fields = {
    environment = slot[1], status = slot[2], start_ms = slot[3], capacity = slot[4],
    num_active_bookings = slot[5],
  }
  return place_refusal_of(fields, lock_key, held_key, resource_key, environment, holder, now_ms)
end

-- move_counters: add `delta` to one counter of a slot and of its resource; returns the
-- slot's new count. Callers pass `delta` as text ('1', '-1'): Redis 7.0 prints a number
-- argument with printf (see slot_event).
local function move_counters(slot_key, resource_key, field, delta)
  redis.call('HINCRBY', resource_key, field, delta)
  return redis.call('HINCRBY', slot_key, field, delta)
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
