#!lua
--[[
release_booking: step 2 of a move to another resource: the source gives the booking
up and keeps a forwarding address to the target. Refused once the healer has
aborted this move, so a slow step can never release a booking whose target
reservation was undone.

  KEYS[1] booking_key             sl:{A}:booking:<booking id>
  KEYS[2] slot_key                sl:{A}:slot:<source slot id>
  KEYS[3] resource_key            sl:{A}:resource
  KEYS[4] resource_bookings_key   sl:{A}:bookings
  KEYS[5] slot_bookings_key       sl:{A}:slot-bookings:<source slot id>
  KEYS[6] lock_key                sl:{A}:lock:<source slot id>   read for the event's slot view
  KEYS[7] events_key              sl:{A}:events                  the change stream (slot.released)
  KEYS[8] held_key                sl:{A}:held:<source slot id>   read for the event's slot view
  KEYS[9] starts_key              sl:{A}:slots     slot ids by start, open and shut bands
  ARGV[1] environment             the caller's environment; another one sees nothing
  ARGV[2] booking_id
  ARGV[3] source_slot_id          the slot the caller found the booking on
  ARGV[4] status                  the status the target reserved for
  ARGV[5] target_slot_id
  ARGV[6] intent_id               names this move in every step
  ARGV[7] now_ms                  becomes updated_ms

Returns:
  {"OK"}                          released (or already released by this move)
  {"ABORTED"}                     the healer undid this move first
  {"STALE"}                       the booking changed since the caller read it
  {"BOOKING_NOT_FOUND"}
]]
--!include booking_checks.lua
--!include places.lua
--!include slot_view.lua
--!include events.lua
--!include bands.lua
--!include slot_index.lua
local booking_key, slot_key, resource_key = KEYS[1], KEYS[2], KEYS[3]
local resource_bookings_key, slot_bookings_key, starts_key = KEYS[4], KEYS[5], KEYS[9]
local environment, booking_id, source_slot_id, status = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local target_slot_id, intent_id, now_ms = ARGV[5], ARGV[6], ARGV[7]

local booking = redis.call('HMGET', booking_key,
  'environment', 'slot_id', 'status', 'moved_to_slot', 'moved_intent', 'aborted_intent',
  'pending_intent')
if booking[1] ~= environment then
  return {'BOOKING_NOT_FOUND'}
end
if booking[5] == intent_id then
  return {'OK'}
end
if booking[6] == intent_id then
  return {'ABORTED'}
end
if booking[2] ~= source_slot_id or (booking[4] or '') ~= '' or booking[3] ~= status
    or (booking[7] or '') ~= '' then
  return {'STALE'}
end

local status_field = status == 'active' and 'num_active_bookings' or 'num_cancelled_bookings'
move_counters(slot_key, resource_key, 'num_bookings', '-1')
move_counters(slot_key, resource_key, status_field, '-1')
reindex_slot(starts_key, slot_key)
redis.call('ZREM', resource_bookings_key, booking_id)
redis.call('ZREM', slot_bookings_key, booking_id)
redis.call('HSET', booking_key,
  'moved_to_slot', target_slot_id, 'moved_intent', intent_id, 'updated_ms', now_ms)
slot_event_now(KEYS[7], 'slot.released', slot_key, KEYS[6], resource_key, KEYS[8], now_ms)
return {'OK'}
