#!lua
--[[
reserve_place: step 1 of a move to another resource's slot: hold a place on the
target for a booking that still lives on its source. The reservation counts in
the target's counters at once, so no later booking can oversell the slot, and
is confirmed by confirm_place or undone by abort_place (see the README's saga).
A place taken from the mover's partial hold leaves that hold here and now (so that
bookings plus held places never exceed the capacity); an aborted move frees the
place rather than giving it back to the hold.

  KEYS[1] slot_key         sl:{C}:slot:<target slot id>
  KEYS[2] lock_key         sl:{C}:lock:<target slot id>
  KEYS[3] resource_key     sl:{C}:resource
  KEYS[4] booking_key      sl:{C}:booking:<booking id>   where the booking will live
  KEYS[5] holds_key        sl:{C}:holds:<holder>         slot ids the mover's lock_key holds here
  KEYS[6] held_key         sl:{C}:held:<target slot id>   partial holds, by until_ms
  KEYS[7] lock_ends_key    sl:{C}:lock-ends               locked slot ids by next lock end
  KEYS[8] events_key       sl:{C}:events                  the change stream (slot.booked)
  KEYS[9] starts_key       sl:{C}:slots                   slot ids by start, open and shut bands
  ARGV[1] environment      the caller's environment; another one sees nothing
  ARGV[2] now_ms           the service's clock, for the booking window and holds
  ARGV[3] holder           SHA-256 hex of the request's lock_key, or ""
  ARGV[4] intent_id        names this move in every step
  ARGV[5] status           the booking's status: "active" needs a free place
  ARGV[6..] fields         the booking as it will be on the target (pending_intent set)

Returns:
  {"OK", resource id}
  {"SLOT_NOT_FOUND"} {"SLOT_DISABLED"} {"RESOURCE_DRAFT"} {"BOOKING_CLOSED"}
  {"LOCKED_BY_OTHER"} {"SLOT_FULL"}   the target refuses the place, as create would
  {"STALE"}                          the booking already lives on this resource
]]
--!include places.lua
--!include holds.lua
--!include booking_checks.lua
--!include slot_view.lua
--!include events.lua
--!include bands.lua
--!include slot_index.lua
local slot_key, lock_key, resource_key, booking_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local holds_key, held_key, lock_ends_key, events_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local starts_key = KEYS[9]
local environment, now_ms, holder, intent_id, status = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local existing = redis.call('HMGET', booking_key, 'pending_intent', 'moved_to_slot', 'id')
if existing[1] == intent_id then
  return {'OK', redis.call('HGET', resource_key, 'id')}
end
if existing[3] and (existing[2] or '') == '' then
  return {'STALE'}
end

if status == 'active' then
  local refusal, own_hold = place_refusal(
    slot_key, lock_key, held_key, resource_key, environment, holder, now_ms)
  if refusal then
    return {refusal}
  end
  if own_hold then
    local slot_id = redis.call('HGET', slot_key, 'id')
    take_held_place(held_key, holds_key, holder, own_hold, slot_id)
    track_lock_end(lock_ends_key, slot_id, lock_key, held_key, now_ms)
  end
elseif redis.call('HGET', slot_key, 'environment') ~= environment then
  return {'SLOT_NOT_FOUND'}
end

local resource_id = redis.call('HGET', resource_key, 'id')
redis.call('DEL', booking_key)  -- a forwarding address left by an earlier move
redis.call('HSET', booking_key, unpack(ARGV, 6))
redis.call('HSET', booking_key, 'resource_id', resource_id)
local status_field = status == 'active' and 'num_active_bookings' or 'num_cancelled_bookings'
move_counters(slot_key, resource_key, 'num_bookings', '1')
move_counters(slot_key, resource_key, status_field, '1')
reindex_slot(starts_key, slot_key)
slot_event_now(events_key, 'slot.booked', slot_key, lock_key, resource_key, held_key, now_ms)
return {'OK', resource_id}
