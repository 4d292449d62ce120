#!lua
--[[
delete_slot: remove a slot that has no active bookings, with its lock, its partial
holds and its cancelled bookings, and take them out of the resource's counters.

  KEYS[1] slot_key                sl:{T}:slot:<slot id>
  KEYS[2] lock_key                sl:{T}:lock:<slot id>
  KEYS[3] resource_key            sl:{T}:resource
  KEYS[4] starts_key              sl:{T}:slots           slot ids by start_ms
  KEYS[5] slot_bookings_key       sl:{T}:slot-bookings:<slot id>
  KEYS[6] resource_bookings_key   sl:{T}:bookings
  KEYS[7] held_key                sl:{T}:held:<slot id>  partial holds, by until_ms
  KEYS[8] lock_ends_key           sl:{T}:lock-ends       locked slot ids by next lock end
  KEYS[9] events_key              sl:{T}:events          the change stream (slot.deleted)
  KEYS[10..] booking keys         sl:{T}:booking:<booking id>, the slot's bookings as the caller read them
  ARGV[1] environment             the caller's environment; another one sees nothing
  ARGV[2..] booking ids           in KEYS order

Returns:
  {"OK"}
  {"SLOT_NOT_FOUND"}
  {"HAS_ACTIVE_BOOKINGS", num_active_bookings}
  {"STALE"}                       the slot's bookings changed since the caller read them: read again
]]
--!include places.lua
--!include slot_view.lua
--!include events.lua
local slot_key, lock_key, resource_key = KEYS[1], KEYS[2], KEYS[3]
local starts_key = KEYS[4]
local slot_bookings_key, resource_bookings_key = KEYS[5], KEYS[6]
local held_key, lock_ends_key, events_key = KEYS[7], KEYS[8], KEYS[9]
local environment = ARGV[1]
local booking_count = #ARGV - 1

local slot = redis.call('HMGET', slot_key,
  'environment', 'id', 'num_active_bookings', 'num_bookings', 'num_cancelled_bookings')
if slot[1] ~= environment then
  return {'SLOT_NOT_FOUND'}
end
if tonumber(slot[3]) > 0 then
  return {'HAS_ACTIVE_BOOKINGS', tonumber(slot[3])}
end
if redis.call('ZCARD', slot_bookings_key) ~= booking_count then
  return {'STALE'}
end
for i = 1, booking_count do
  if not redis.call('ZSCORE', slot_bookings_key, ARGV[1 + i]) then
    return {'STALE'}
  end
end

for i = 1, booking_count do
  redis.call('DEL', KEYS[9 + i])
  redis.call('ZREM', resource_bookings_key, ARGV[1 + i])
end
redis.call('DEL', slot_key, lock_key, slot_bookings_key, held_key)
redis.call('ZREM', starts_key, slot[2])
redis.call('ZREM', lock_ends_key, slot[2])
append_event(events_key, 'slot.deleted', cjson.encode({slot_id = slot[2]}))
redis.call('HINCRBY', resource_key, 'num_slots', -1)
-- `0 - n`, not `-n`: for n = 0 the latter is -0, which reaches Redis as "-0"
-- and HINCRBY refuses it (fakeredis does not, so only a real server shows it).
redis.call('HINCRBY', resource_key, 'num_bookings', 0 - tonumber(slot[4]))
redis.call('HINCRBY', resource_key, 'num_cancelled_bookings', 0 - tonumber(slot[5]))
return {'OK'}
