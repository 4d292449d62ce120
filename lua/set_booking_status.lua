#!lua
--[[
set_booking_status: cancel a booking (frees its place) or enable it again (takes a
place if one is free and no other key holds the slot's lock; with the lock_key of a
partial hold on the slot, one of its held places). Setting the status a booking
already has changes nothing, so a retried cancel is harmless.

  KEYS[1] booking_key    sl:{T}:booking:<booking id>
  KEYS[2] slot_key       sl:{T}:slot:<slot id>
  KEYS[3] lock_key       sl:{T}:lock:<slot id>
  KEYS[4] resource_key   sl:{T}:resource
  KEYS[5] holds_key      sl:{T}:holds:<holder>          slot ids the request's lock_key holds here
  KEYS[6] held_key       sl:{T}:held:<slot id>          partial holds, by until_ms
  KEYS[7] lock_ends_key  sl:{T}:lock-ends               locked slot ids by next lock end
  KEYS[8] events_key     sl:{T}:events                  the change stream (slot.booked, slot.released)
  KEYS[9] starts_key     sl:{T}:slots                   slot ids by start, open and shut bands
  KEYS[10] resource_bookings_key  sl:{T}:bookings             booking ids by creation, active and cancelled bands
  KEYS[11] slot_bookings_key      sl:{T}:slot-bookings:<slot id>  the same for the slot
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] status         "cancelled" or "active"
  ARGV[3] now_ms         becomes updated_ms; holds that ended before it no longer count
  ARGV[4] holder         SHA-256 hex of the request's lock_key, or ""
  ARGV[5] slot_id        the slot the caller found the booking on

Returns:
  {"OK", booking fields (HGETALL)}
  {"BOOKING_NOT_FOUND"}
  {"STALE"}              the booking is no longer on ARGV[5]'s slot, or is being moved: look again
  {"SLOT_DISABLED"} {"LOCKED_BY_OTHER"} {"SLOT_FULL"}   enabling only
]]
--!include places.lua
--!include holds.lua
--!include booking_checks.lua
--!include slot_view.lua
--!include events.lua
--!include bands.lua
--!include slot_index.lua
local booking_key, slot_key, lock_key, resource_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local holds_key, held_key, lock_ends_key, events_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local starts_key, resource_bookings_key, slot_bookings_key = KEYS[9], KEYS[10], KEYS[11]
local environment, status, now_ms, holder, slot_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local current, refusal = settled_status(booking_key, environment, slot_id)
if not current then
  return {refusal}
end

if current ~= status then
  -- A lock or hold that ended by itself is reported before this change (events in order).
  settle_lock_end(lock_ends_key, events_key, slot_key, lock_key, resource_key, held_key, slot_id, now_ms)
  if status == 'active' then
    local slot = redis.call('HMGET', slot_key, 'status', 'id', 'capacity', 'num_active_bookings')
    if slot[1] ~= 'active' then
      return {'SLOT_DISABLED'}
    end
    local refusal, own_hold = lock_refusal(slot[3], slot[4], lock_key, held_key, holder, now_ms)
    if refusal then
      return {refusal}
    end
    -- A whole-slot lock of the holder stays (enable is no checkout); a partial hold gives
    -- up the place the booking took.
    if own_hold then
      take_held_place(held_key, holds_key, holder, own_hold, slot[2])
      track_lock_end(lock_ends_key, slot[2], lock_key, held_key, now_ms)
    end
    move_counters(slot_key, resource_key, 'num_active_bookings', '1')
    move_counters(slot_key, resource_key, 'num_cancelled_bookings', '-1')
  else
    move_counters(slot_key, resource_key, 'num_active_bookings', '-1')
    move_counters(slot_key, resource_key, 'num_cancelled_bookings', '1')
  end
  redis.call('HSET', booking_key, 'status', status, 'updated_ms', now_ms)
  reindex_slot(starts_key, slot_key)
  local booking = redis.call('HMGET', booking_key, 'id', 'created_ms')
  local score = band_score(booking[2], status == 'active')
  redis.call('ZADD', resource_bookings_key, score, booking[1])
  redis.call('ZADD', slot_bookings_key, score, booking[1])
  local kind = status == 'active' and 'slot.booked' or 'slot.released'
  slot_event_now(events_key, kind, slot_key, lock_key, resource_key, held_key, now_ms)
end
return {'OK', redis.call('HGETALL', booking_key)}
