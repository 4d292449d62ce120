#!lua
--[[
reschedule_booking: move a booking to another slot of the same resource, all or nothing.
(Slots of two resources live on two shards; see the README's reschedule saga.)

  KEYS[1] booking_key              sl:{T}:booking:<booking id>
  KEYS[2] source_slot_key          sl:{T}:slot:<source slot id>
  KEYS[3] source_bookings_key      sl:{T}:slot-bookings:<source slot id>
  KEYS[4] target_slot_key          sl:{T}:slot:<target slot id>
  KEYS[5] target_lock_key          sl:{T}:lock:<target slot id>
  KEYS[6] target_bookings_key      sl:{T}:slot-bookings:<target slot id>
  KEYS[7] resource_key             sl:{T}:resource
  KEYS[8] holds_key                sl:{T}:holds:<holder>     slot ids the request's lock_key holds here
  KEYS[9] target_held_key          sl:{T}:held:<target slot id>   partial holds, by until_ms
  KEYS[10] source_lock_key         sl:{T}:lock:<source slot id>   read for the event's slot view
  KEYS[11] source_held_key         sl:{T}:held:<source slot id>   read for the event's slot view
  KEYS[12] lock_ends_key           sl:{T}:lock-ends               locked slot ids by next lock end
  KEYS[13] events_key              sl:{T}:events    the change stream (slot.released, slot.booked)
  KEYS[14] starts_key              sl:{T}:slots     slot ids by start, open and shut bands
  ARGV[1] environment              the caller's environment; another one sees nothing
  ARGV[2] now_ms                   the service's clock, for the booking window and holds
  ARGV[3] holder                   SHA-256 hex of the request's lock_key, or ""
  ARGV[4] booking_id
  ARGV[5] source_slot_id           the slot the caller found the booking on
  ARGV[6] target_slot_id

Returns:
  {"OK", booking fields (HGETALL)}
  {"BOOKING_NOT_FOUND"}
  {"STALE"}                        the booking is no longer on the source slot, or is being moved
  {"SLOT_NOT_FOUND"} {"SLOT_DISABLED"} {"RESOURCE_DRAFT"} {"BOOKING_CLOSED"}
  {"LOCKED_BY_OTHER"} {"SLOT_FULL"}   the target refuses the place, as create would
]]
--!include places.lua
--!include holds.lua
--!include booking_checks.lua
--!include slot_view.lua
--!include events.lua
--!include bands.lua
--!include slot_index.lua
local booking_key, source_slot_key, source_bookings_key = KEYS[1], KEYS[2], KEYS[3]
local target_slot_key, target_lock_key, target_bookings_key = KEYS[4], KEYS[5], KEYS[6]
local resource_key, holds_key, target_held_key = KEYS[7], KEYS[8], KEYS[9]
local source_lock_key, source_held_key, lock_ends_key, events_key = KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local starts_key = KEYS[14]
local environment, now_ms, holder = ARGV[1], ARGV[2], ARGV[3]
local booking_id, source_slot_id, target_slot_id = ARGV[4], ARGV[5], ARGV[6]

local booking = redis.call('HMGET', booking_key,
  'environment', 'status', 'slot_id', 'moved_to_slot', 'created_ms', 'pending_intent')
if booking[1] ~= environment then
  return {'BOOKING_NOT_FOUND'}
end
if booking[3] ~= source_slot_id or (booking[4] or '') ~= '' or (booking[6] or '') ~= '' then
  return {'STALE'}
end
if source_slot_id == target_slot_id then
  return {'OK', redis.call('HGETALL', booking_key)}
end

-- A lock or hold that ended by itself is reported before this change (events in order).
settle_lock_end(lock_ends_key, events_key, source_slot_key, source_lock_key, resource_key,
  source_held_key, source_slot_id, now_ms)
settle_lock_end(lock_ends_key, events_key, target_slot_key, target_lock_key, resource_key,
  target_held_key, target_slot_id, now_ms)

local status_field = 'num_cancelled_bookings'
if booking[2] == 'active' then
  status_field = 'num_active_bookings'
  local refusal, own_hold = place_refusal(
    target_slot_key, target_lock_key, target_held_key, resource_key, environment, holder, now_ms)
  if refusal then
    return {refusal}
  end
  -- As a booking made with the holder's key would.
  take_place_of_holder(
    target_lock_key, target_held_key, holds_key, holder, own_hold, target_slot_id)
  track_lock_end(lock_ends_key, target_slot_id, target_lock_key, target_held_key, now_ms)
elseif redis.call('HGET', target_slot_key, 'environment') ~= environment then
  return {'SLOT_NOT_FOUND'}
end

for _, move in ipairs({{source_slot_key, -1}, {target_slot_key, 1}}) do
  redis.call('HINCRBY', move[1], 'num_bookings', move[2])
  redis.call('HINCRBY', move[1], status_field, move[2])
end
redis.call('ZREM', source_bookings_key, booking_id)
redis.call('ZADD', target_bookings_key, band_score(booking[5], booking[2] == 'active'), booking_id)
reindex_slot(starts_key, source_slot_key)
reindex_slot(starts_key, target_slot_key)
redis.call('HSET', booking_key, 'slot_id', target_slot_id, 'updated_ms', now_ms)
slot_event_now(events_key, 'slot.released', source_slot_key, source_lock_key, resource_key, source_held_key, now_ms)
slot_event_now(events_key, 'slot.booked', target_slot_key, target_lock_key, resource_key, target_held_key, now_ms)
return {'OK', redis.call('HGETALL', booking_key)}
