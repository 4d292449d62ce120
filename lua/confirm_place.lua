#!lua
--[[
confirm_place: step 3 of a move to another resource: the reservation becomes the
booking, joins the target's lists, and consumes the mover's lock on the target.
Harmless to repeat.

  KEYS[1] booking_key             sl:{C}:booking:<booking id>
  KEYS[2] resource_bookings_key   sl:{C}:bookings
  KEYS[3] slot_bookings_key       sl:{C}:slot-bookings:<target slot id>
  KEYS[4] lock_key                sl:{C}:lock:<target slot id>
  KEYS[5] slot_key                sl:{C}:slot:<target slot id>
  KEYS[6] resource_key            sl:{C}:resource
  KEYS[7] lock_ends_key           sl:{C}:lock-ends               locked slot ids by lock end
  KEYS[8] events_key              sl:{C}:events                  the change stream (slot.unlocked)
  KEYS[9] held_key                sl:{C}:held:<target slot id>   read for the event's slot view
  ARGV[1] booking_id
  ARGV[2] intent_id               names this move in every step
  ARGV[3] holder                  SHA-256 hex of the request's lock_key, or ""

Returns:
  {"OK", booking fields (HGETALL)}
  {"GONE"}                        no reservation of this move is left to confirm
]]
--!include places.lua
--!include slot_view.lua
--!include events.lua
--!include bands.lua
local booking_key, resource_bookings_key, slot_bookings_key, lock_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local slot_key, resource_key, lock_ends_key, events_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local held_key = KEYS[9]
local booking_id, intent_id, holder = ARGV[1], ARGV[2], ARGV[3]

local booking = redis.call('HMGET', booking_key, 'pending_intent', 'created_ms', 'moved_to_slot', 'status', 'slot_id')
if booking[1] == intent_id then
  redis.call('HSET', booking_key, 'pending_intent', '')
  local score = band_score(booking[2], booking[4] == 'active')
  redis.call('ZADD', resource_bookings_key, score, booking_id)
  redis.call('ZADD', slot_bookings_key, score, booking_id)
  local lock = redis.call('GET', lock_key)
  if holder ~= '' and lock and string.match(lock, '^(%x+):') == holder then
    redis.call('DEL', lock_key)
    -- The place was counted (and its slot.booked written) when it was reserved.
    local now_ms = redis_now_ms()
    track_lock_end_and_report(lock_ends_key, events_key, 'slot.unlocked',
      slot_fields(slot_key), lock_key, resource_key, held_key, now_ms)
  end
elseif not booking[2] or (booking[3] or '') ~= '' then
  return {'GONE'}
end
return {'OK', redis.call('HGETALL', booking_key)}
