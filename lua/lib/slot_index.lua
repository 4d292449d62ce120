-- slot_index: a resource's slots in `sl:{T}:slots`, by start, in two bands (bands.lua):
-- "open" (active, and fewer active bookings than places) and "shut" (the rest). Every
-- script that changes a slot's status, capacity, start or active bookings calls
-- reindex_slot in the same step, so the bands are exact at every instant. What changes
-- with no request at all (locks ending, booking windows closing) is not in the bands:
-- lists work it out from the slots whose locks may still run (`sl:{T}:lock-ends`, events.lua)
-- and the clock.

-- Whether a slot with these fields is open (could take a booking, were it not for
-- locks and the clock).
local function slot_is_open(status, capacity, num_active_bookings)
  return status == 'active' and tonumber(num_active_bookings or '0') < tonumber(capacity or '0')
end

-- Put the slot in the band its fields say (a table a script has read and kept current:
-- id, start_ms, status, capacity, num_active_bookings), at its start.
local function reindex_slot_of(starts_key, slot)
  local is_open = slot_is_open(slot.status, slot.capacity, slot.num_active_bookings)
  redis.call('ZADD', starts_key, band_score(slot.start_ms, is_open), slot.id)
end

-- Put the slot in the band its hash says, at its start. A slot that is gone is left out.
local function reindex_slot(starts_key, slot_key)
  local slot = redis.call('HMGET', slot_key, 'id', 'start_ms', 'status', 'capacity', 'num_active_bookings')
  if slot[1] then
    redis.call('ZADD', starts_key, band_score(slot[2], slot_is_open(slot[3], slot[4], slot[5])), slot[1])
  end
end
