#!lua
--[[
delete_booking: remove a booking for good, and its weight from the counters.

  KEYS[1] booking_key             sl:{T}:booking:<booking id>
  KEYS[2] slot_key                sl:{T}:slot:<slot id>
  KEYS[3] resource_key            sl:{T}:resource
  KEYS[4] resource_bookings_key   sl:{T}:bookings
  KEYS[5] slot_bookings_key       sl:{T}:slot-bookings:<slot id>
  KEYS[6] lock_key                sl:{T}:lock:<slot id>   read for the event's slot view
  KEYS[7] events_key              sl:{T}:events           the change stream (slot.released)
  KEYS[8] held_key                sl:{T}:held:<slot id>   read for the event's slot view
  KEYS[9] starts_key              sl:{T}:slots            slot ids by start, open and shut bands
  KEYS[10] lock_ends_key          sl:{T}:lock-ends        locked slot ids by next lock end (settled first)
  ARGV[1] environment             the caller's environment; another one sees nothing
  ARGV[2] slot_id                 the slot the caller found the booking on
  ARGV[3] booking_id

Returns:
  {"OK"}
  {"BOOKING_NOT_FOUND"}
  {"STALE"}                       the booking is no longer on ARGV[2]'s slot, or is being moved
]]
--!include booking_checks.lua
--!include places.lua
--!include slot_view.lua
--!include events.lua
--!include bands.lua
--!include slot_index.lua
local booking_key, slot_key, resource_key = KEYS[1], KEYS[2], KEYS[3]
local resource_bookings_key, slot_bookings_key = KEYS[4], KEYS[5]
local lock_key, events_key, held_key, starts_key = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local lock_ends_key = KEYS[10]
local environment, slot_id, booking_id = ARGV[1], ARGV[2], ARGV[3]

local current, refusal = settled_status(booking_key, environment, slot_id)
if not current then
  return {refusal}
end

-- A lock or hold that ended by itself is reported before this change (events in order).
local now_ms = redis_now_ms()
settle_lock_end(lock_ends_key, events_key, slot_key, lock_key, resource_key, held_key, slot_id, now_ms)
move_counters(slot_key, resource_key, 'num_bookings', '-1')
if current == 'active' then
  move_counters(slot_key, resource_key, 'num_active_bookings', '-1')
else
  move_counters(slot_key, resource_key, 'num_cancelled_bookings', '-1')
end
redis.call('ZREM', resource_bookings_key, booking_id)
redis.call('ZREM', slot_bookings_key, booking_id)
redis.call('DEL', booking_key)
reindex_slot(starts_key, slot_key)
slot_event_now(events_key, 'slot.released', slot_key, lock_key, resource_key, held_key, now_ms)
return {'OK'}
