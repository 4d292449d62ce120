#!lua
--[[
set_booking_status: cancel a booking (frees its place) or enable it again (takes a
place if one is free and no other key holds the slot's lock). Setting the status
a booking already has changes nothing, so a retried cancel is harmless.

  KEYS[1] booking_key    sl:{T}:booking:<booking id>
  KEYS[2] slot_key       sl:{T}:slot:<slot id>
  KEYS[3] lock_key       sl:{T}:lock:<slot id>
  KEYS[4] resource_key   sl:{T}:resource
  KEYS[5] events_key     sl:{T}:events      the change stream (slot.booked, slot.released)
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] status         "cancelled" or "active"
  ARGV[3] now_ms         becomes updated_ms
  ARGV[4] holder         SHA-256 hex of the request's lock_key, or ""
  ARGV[5] slot_id        the slot the caller found the booking on

Returns:
  {"OK", booking fields (HGETALL)}
  {"BOOKING_NOT_FOUND"}
  {"STALE"}              the booking is no longer on ARGV[5]'s slot, or is being moved: look again
  {"SLOT_DISABLED"} {"LOCKED_BY_OTHER"} {"SLOT_FULL"}   enabling only
]]
--!include booking_checks.lua
--!include slot_view.lua
--!include events.lua
local booking_key, slot_key, lock_key, resource_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local events_key = KEYS[5]
local environment, status, now_ms, holder, slot_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local current, refusal = settled_status(booking_key, environment, slot_id)
if not current then
  return {refusal}
end

if current ~= status then
  if status == 'active' then
    local slot = redis.call('HMGET', slot_key, 'status', 'capacity', 'num_active_bookings')
    if slot[1] ~= 'active' then
      return {'SLOT_DISABLED'}
    end
    local lock = redis.call('GET', lock_key)
    if lock and string.match(lock, '^(%x+):') ~= holder then
      return {'LOCKED_BY_OTHER'}
    end
    if tonumber(slot[3]) >= tonumber(slot[2]) then
      return {'SLOT_FULL'}
    end
    move_counters(slot_key, resource_key, 'num_active_bookings', 1)
    move_counters(slot_key, resource_key, 'num_cancelled_bookings', -1)
  else
    move_counters(slot_key, resource_key, 'num_active_bookings', -1)
    move_counters(slot_key, resource_key, 'num_cancelled_bookings', 1)
  end
  redis.call('HSET', booking_key, 'status', status, 'updated_ms', now_ms)
  local kind = status == 'active' and 'slot.booked' or 'slot.released'
  slot_event(events_key, kind, slot_view(slot_key, lock_key, resource_key))
end
return {'OK', redis.call('HGETALL', booking_key)}
