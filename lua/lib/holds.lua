-- Changes to partial holds (the layout is in places.lua, which a script includes first).
-- Kept apart from places.lua so that a script that only reads (read_slot) includes no
-- write command, and its `no-writes` flag can be checked against its body.

-- drop_ended_holds: forget holds that ended at or before now_ms (only scripts that write).
local function drop_ended_holds(held_key, now_ms)
  redis.call('ZREMRANGEBYSCORE', held_key, '-inf', now_ms)
end

-- put_hold: store holder's hold (quantity places until until_ms, fencing token kept) in
-- place of `old` (its running hold, or nil).
local function put_hold(held_key, holder, quantity, token, until_ms, old)
  if old then
    redis.call('ZREM', held_key, old[4])
  end
  redis.call('ZADD', held_key, until_ms, holder .. ':' .. quantity .. ':' .. token)
  -- The set lives as long as its longest hold; a shortened hold leaves it longer, which
  -- costs a little memory and no correctness (only until_ms > now_ms counts).
  if redis.call('PEXPIRETIME', held_key) < tonumber(until_ms) then
    redis.call('PEXPIREAT', held_key, until_ms)
  end
end

-- drop_hold: remove a running hold, and its slot from its holder's per-key cap set.
local function drop_hold(held_key, holds_key, hold, slot_id)
  redis.call('ZREM', held_key, hold[4])
  redis.call('ZREM', holds_key, slot_id)
end

-- take_held_place: one of the holder's held places becomes a booking; the hold shrinks by
-- one and ends at zero (then the same key locking again gets a new token).
local function take_held_place(held_key, holds_key, holder, hold, slot_id)
  local quantity, token, until_ms = hold[1], hold[2], hold[3]
  if quantity > 1 then
    redis.call('ZREM', held_key, hold[4])
    redis.call('ZADD', held_key, until_ms, holder .. ':' .. (quantity - 1) .. ':' .. token)
  else
    drop_hold(held_key, holds_key, hold, slot_id)
  end
end

-- take_place_of_holder: a booking made with the holder's key (past place_refusal) takes
-- its place: a whole-slot lock on the slot is consumed (only its holder got this far), or
-- the holder's partial hold (own_hold, or nil) gives up one place.
local function take_place_of_holder(lock_key, held_key, holds_key, holder, own_hold, slot_id)
  if redis.call('DEL', lock_key) == 1 then
    redis.call('ZREM', holds_key, slot_id)
  elseif own_hold then
    take_held_place(held_key, holds_key, holder, own_hold, slot_id)
  end
end
