#!lua
--[[
create_booking: book one place in a slot; a matching lock is released in the same step,
or a matching partial hold gives up one of its places.

  KEYS[1] slot_key                sl:{T}:slot:<slot id>
  KEYS[2] lock_key                sl:{T}:lock:<slot id>      "<holder>:<token>"
  KEYS[3] resource_key            sl:{T}:resource
  KEYS[4] resource_bookings_key   sl:{T}:bookings                  booking ids by created_ms
  KEYS[5] slot_bookings_key       sl:{T}:slot-bookings:<slot id>   booking ids by created_ms
  KEYS[6] booking_key             sl:{T}:booking:<booking id>
  KEYS[7] receipt_key             sl:{T}:receipt:<idempotency hash>  what an Idempotency-Key booked
  KEYS[8] holds_key               sl:{T}:holds:<holder>              slots the lock_key holds here
  KEYS[9] held_key                sl:{T}:held:<slot id>              partial holds, by until_ms
  KEYS[10] lock_ends_key          sl:{T}:lock-ends                   locked slot ids by next lock end
  KEYS[11] events_key             sl:{T}:events                      the change stream (slot.booked)
  KEYS[12] starts_key             sl:{T}:slots                       slot ids by start, open and shut bands
  ARGV[1] environment             the caller's environment; another one sees nothing
  ARGV[2] now_ms                  the service's clock, for the booking window and holds
  ARGV[3] holder                  SHA-256 hex of the request's lock_key, or ""
  ARGV[4] booking_id
  ARGV[5] receipt_ttl_ms          how long the receipt is kept (24 h), or 0 without Idempotency-Key
  ARGV[6..] fields                the new booking's field/value entries for HSET

Returns:
  {"OK", resource id}             the booking's resource_id field is set from the resource
  {"REPLAY", booking id}          this Idempotency-Key already booked: nothing changed
  {"SLOT_NOT_FOUND"} {"SLOT_DISABLED"} {"RESOURCE_DRAFT"} {"BOOKING_CLOSED"}
  {"LOCKED_BY_OTHER"}             locked, and the request does not carry its lock_key
  {"SLOT_FULL"}                   no place that is neither booked nor held by another key
]]
--!include places.lua
--!include holds.lua
--!include booking_checks.lua
--!include slot_view.lua
--!include events.lua
--!include bands.lua
--!include slot_index.lua
local slot_key, lock_key, resource_key = KEYS[1], KEYS[2], KEYS[3]
local resource_bookings_key, slot_bookings_key, booking_key = KEYS[4], KEYS[5], KEYS[6]
local receipt_key, holds_key, held_key = KEYS[7], KEYS[8], KEYS[9]
local lock_ends_key, events_key, starts_key = KEYS[10], KEYS[11], KEYS[12]
local environment, now_ms, holder, booking_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local receipt_ttl_ms = tonumber(ARGV[5])

-- A retry whose first attempt booked (its answer lost with a broken connection)
-- must find that booking, not make a second one.
local booked = redis.call('GET', receipt_key)
if booked then
  return {'REPLAY', booked}
end

-- One read of the slot serves the checks, its index and its event: nothing here writes
-- to its hash but the two counters, which are kept current in `slot` below.
local slot = slot_fields(slot_key)
local slot_id = slot.id
if slot_id then
  settle_lock_end(lock_ends_key, events_key, slot_key, lock_key, resource_key, held_key, slot_id, now_ms)
end
local refusal, own_hold = place_refusal_of(
  slot, lock_key, held_key, resource_key, environment, holder, now_ms)
if refusal then
  return {refusal}
end

local resource_id = redis.call('HGET', resource_key, 'id')
redis.call('HSET', booking_key, unpack(ARGV, 6))
redis.call('HSET', booking_key, 'resource_id', resource_id)
redis.call('ZADD', resource_bookings_key, now_ms, booking_id)
redis.call('ZADD', slot_bookings_key, now_ms, booking_id)
slot.num_bookings = tostring(move_counters(slot_key, resource_key, 'num_bookings', '1'))
slot.num_active_bookings = tostring(
  move_counters(slot_key, resource_key, 'num_active_bookings', '1'))
reindex_slot_of(starts_key, slot)
take_place_of_holder(lock_key, held_key, holds_key, holder, own_hold, slot_id)
track_lock_end_and_report(
  lock_ends_key, events_key, 'slot.booked', slot, lock_key, resource_key, held_key, now_ms)
if receipt_ttl_ms > 0 then
  redis.call('SET', receipt_key, booking_id, 'PX', receipt_ttl_ms)
end
return {'OK', resource_id}
