#!lua
--[[
abort_intent: the healer's first word on a stale move, said on the source: either
the source already released the booking to this move (then the move goes
forward), or it is fenced so that it never will (then the move is undone).

  KEYS[1] booking_key    sl:{A}:booking:<booking id>
  ARGV[1] intent_id      the stale move

Returns:
  {"RELEASED"}           the source gave the booking to this move: confirm the target
  {"ABORTED"}            the source will refuse this move: undo the target's reservation
]]
local booking_key = KEYS[1]
local intent_id = ARGV[1]

if redis.call('HGET', booking_key, 'moved_intent') == intent_id then
  return {'RELEASED'}
end
if redis.call('EXISTS', booking_key) == 1 then
  redis.call('HSET', booking_key, 'aborted_intent', intent_id)
end
return {'ABORTED'}
