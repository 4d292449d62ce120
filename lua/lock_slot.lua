#!lua
--[[
lock_slot: take the lock on a slot, or hold some of its places (a partial hold), or move,
resize or convert what the caller's lock_key already has there.

  KEYS[1] slot_key       sl:{T}:slot:<slot id>
  KEYS[2] lock_key       sl:{T}:lock:<slot id>      "<holder>:<token>", expires at until_ms
  KEYS[3] resource_key   sl:{T}:resource
  KEYS[4] holds_key      sl:{T}:holds:<holder>     slot ids this lock_key holds here, by until_ms
  KEYS[5] held_key       sl:{T}:held:<slot id>      partial holds "<holder>:<quantity>:<token>", by until_ms
  KEYS[6] lock_ends_key  sl:{T}:lock-ends          locked slot ids by next lock end (the expiry sweep, lists)
  KEYS[7] events_key     sl:{T}:events             the resource's change stream (slot.locked)
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] holder         SHA-256 hex of the client's lock_key (the key itself never reaches Redis)
  ARGV[3] until_ms       lock_until in epoch ms; Redis drops the lock then (SET PXAT)
  ARGV[4] now_ms         the service's clock: holds that ended before it no longer count
  ARGV[5] max_holds      how many slots of this resource one lock_key may hold at once
  ARGV[6] quantity       places to hold, or 0 for a whole-slot lock

Returns:
  {"OK", token, view}          token: fencing token, kept while the same key resizes, moves
                               or converts what it has
  {"SLOT_NOT_FOUND"}
  {"NOT_LOCKABLE"}
  {"SLOT_DISABLED"}
  {"SLOT_FULL"}                whole-slot lock: no free place
  {"PLACES_SHORT", free, own}  partial hold: only `free` places are free besides the `own`
                               places the key holds already (its hold stays as it was)
  {"LOCKED", locked_until_ms}  held whole by another lock_key
  {"HELD", held_until_ms}      whole-slot lock refused: another lock_key holds places (the
                               first of those holds ends then)
  {"HOLD_CAP", max_holds}      this lock_key already holds max_holds slots of the resource
]]
--!include places.lua
--!include holds.lua
--!include slot_view.lua
--!include events.lua
local slot_key, lock_key, resource_key, holds_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local held_key, lock_ends_key, events_key = KEYS[5], KEYS[6], KEYS[7]
local environment, holder, until_ms = ARGV[1], ARGV[2], ARGV[3]
local now_ms, max_holds, quantity = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])

-- One read of the slot serves the checks and the answer (only lock_seq changes here).
local slot = slot_fields(slot_key)
if slot.environment ~= environment then
  return {'SLOT_NOT_FOUND'}
end
if slot.lockable ~= '1' then
  return {'NOT_LOCKABLE'}
end
if slot.status ~= 'active' then
  return {'SLOT_DISABLED'}
end

local token
local current = redis.call('GET', lock_key)
if not current then  -- while Redis has the lock, nothing of the slot's is due to settle
  settle_lock_end(lock_ends_key, events_key, slot_key, lock_key, resource_key, held_key, slot.id, now_ms)
else
  local current_holder, current_token = string.match(current, '^(%x+):(%d+)$')
  if current_holder ~= holder then
    return {'LOCKED', redis.call('PEXPIRETIME', lock_key)}
  end
  token = current_token
end
local holds, held, _, ended = every_hold(held_key, now_ms)
local own = holds[holder]
local own_quantity = 0
if own then
  own_quantity, token = own[1], own[2]
end
local others_held = held - own_quantity

if quantity == 0 then
  if others_held > 0 then
    return {'HELD', first_end_of_others(holds, holder)}
  end
  if not token and tonumber(slot.num_active_bookings) >= tonumber(slot.capacity) then
    return {'SLOT_FULL'}
  end
else
  local free = tonumber(slot.capacity) - tonumber(slot.num_active_bookings) - others_held
  if quantity > free then
    return {'PLACES_SHORT', math.max(free - own_quantity, 0), own_quantity}
  end
end

local holding  -- slots this lock_key holds here, counted below when it takes a new one
if not token then
  -- One lock_key may not sweep a resource: count what it holds here right now. Ended
  -- holds it still lists are dropped only when the count reaches the cap (the list stays
  -- that short), so the usual count costs one call.
  holding = redis.call('ZCARD', holds_key)
  if holding >= max_holds then
    redis.call('ZREMRANGEBYSCORE', holds_key, '-inf', now_ms)
    holding = redis.call('ZCARD', holds_key)
    if holding >= max_holds then
      return {'HOLD_CAP', max_holds}
    end
  end
  -- As text from here on, like a token read back from the lock: printed once (see
  -- slot_event in events.lua), not again for the lock's value.
  token = tostring(redis.call('HINCRBY', slot_key, 'lock_seq', '1'))
  slot.lock_seq = token
end

if ended > 0 then
  drop_ended_holds(held_key, now_ms)
end
local locked_until_ms = 0
-- What holds the slot next ends first: this lock, or this hold or another's.
local next_end_ms = until_ms  -- as text while it is this lock's (track_lock_end_at)
if quantity == 0 then
  redis.call('SET', lock_key, holder .. ':' .. token, 'PXAT', until_ms)
  if own then
    drop_hold(held_key, holds_key, own, slot.id)
  end
  locked_until_ms = until_ms  -- as text (slot_event)
  held = others_held
else
  if current then
    redis.call('DEL', lock_key)
  end
  put_hold(held_key, holder, quantity, token, until_ms, own)
  held = others_held + quantity
  local others_end_ms = first_end_of_others(holds, holder)
  if others_end_ms > 0 and others_end_ms < tonumber(until_ms) then
    next_end_ms = others_end_ms
  end
end
redis.call('ZADD', holds_key, until_ms, slot.id)
-- The set lives as long as its longest hold; a shortened hold leaves it longer, which
-- costs a little memory and no correctness (ended holds are dropped before a refusal). A
-- set that held nothing did not exist: made just now, it has no deadline to compare with.
if holding == 0 or redis.call('PEXPIRETIME', holds_key) < tonumber(until_ms) then
  redis.call('PEXPIREAT', holds_key, until_ms)
end
local view = slot_view_of(slot, locked_until_ms, resource_key, held)
track_lock_end_at(lock_ends_key, slot.id, next_end_ms)
slot_event(events_key, 'slot.locked', view)
return {'OK', tonumber(token), view}
