#!lua
--[[
update_booking: replace a booking's metadata.

  KEYS[1] booking_key    sl:{T}:booking:<booking id>
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] now_ms         becomes updated_ms
  ARGV[3] metadata       JSON text

Returns:
  {"OK", booking fields (HGETALL)}
  {"BOOKING_NOT_FOUND"}
  {"STALE"}              the record moved away, or is being moved, to another resource: look again
]]
local booking_key = KEYS[1]
local environment, now_ms, metadata = ARGV[1], ARGV[2], ARGV[3]

local booking = redis.call('HMGET', booking_key, 'environment', 'moved_to_slot', 'pending_intent')
if booking[1] ~= environment then
  return {'BOOKING_NOT_FOUND'}
end
if (booking[2] or '') ~= '' or (booking[3] or '') ~= '' then
  return {'STALE'}
end
redis.call('HSET', booking_key, 'metadata', metadata, 'updated_ms', now_ms)
return {'OK', redis.call('HGETALL', booking_key)}
