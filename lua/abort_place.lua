#!lua
--[[
abort_place: undo a target reservation whose move was aborted; the record becomes a
forwarding address back to the source, where the booking still lives.

  KEYS[1] booking_key    sl:{C}:booking:<booking id>
  KEYS[2] slot_key       sl:{C}:slot:<target slot id>
  KEYS[3] resource_key   sl:{C}:resource
  KEYS[4] lock_key       sl:{C}:lock:<target slot id>   read for the event's slot view
  KEYS[5] events_key     sl:{C}:events                  the change stream (slot.released)
  KEYS[6] held_key       sl:{C}:held:<target slot id>   read for the event's slot view
  KEYS[7] starts_key     sl:{C}:slots                   slot ids by start, open and shut bands
  ARGV[1] intent_id      the aborted move
  ARGV[2] source_slot_id where the booking still lives

Returns:
  {"OK"}                 undone, or nothing of this move was left to undo
]]
--!include booking_checks.lua
--!include places.lua
--!include slot_view.lua
--!include events.lua
--!include bands.lua
--!include slot_index.lua
local booking_key, slot_key, resource_key, starts_key = KEYS[1], KEYS[2], KEYS[3], KEYS[7]
local intent_id, source_slot_id = ARGV[1], ARGV[2]

local booking = redis.call('HMGET', booking_key, 'pending_intent', 'status')
if booking[1] == intent_id then
  local status_field = booking[2] == 'active' and 'num_active_bookings' or 'num_cancelled_bookings'
  move_counters(slot_key, resource_key, 'num_bookings', '-1')
  move_counters(slot_key, resource_key, status_field, '-1')
  redis.call('HSET', booking_key, 'pending_intent', '', 'moved_to_slot', source_slot_id)
  reindex_slot(starts_key, slot_key)
  slot_event_now(KEYS[5], 'slot.released', slot_key, KEYS[4], resource_key, KEYS[6])
end
return {'OK'}
