-- Partial holds and free places (API.md "Partial holds").
--
-- The holds of one slot live in two keys beside it, under its hash tag:
--   held_key    sl:{T}:held:<slot id>          zset   holder -> until_ms (deadlines, for a sweeper)
--   places_key  sl:{T}:held-places:<slot id>   hash   holder -> "<quantity>:<token>:<until_ms>"
-- The hash alone answers "how many places are held now" in one HGETALL; both keys get a
-- PEXPIREAT at their longest deadline, so nothing outlives its holds. A hold counts while
-- until_ms > now_ms: an ended hold's places are free at that instant, whether or not Redis
-- has deleted it yet, so no sweeper is needed for the invariant
--   num_active_bookings + held places <= capacity.

-- live_holds: the holds running at now_ms, as holder -> {quantity (a number), token, until_ms
-- (both as stored, text: a Lua number could print an epoch in exponent form),
-- their total quantity, the earliest until_ms among them (0 if none), and whether any
-- ended hold is still stored (drop_ended_holds removes those).
local function live_holds(places_key, now_ms)
  local flat = redis.call('HGETALL', places_key)
  local holds, held, next_end_ms, any_ended = {}, 0, 0, false
  local now = tonumber(now_ms)
  for i = 1, #flat, 2 do
    local quantity, token, until_ms = string.match(flat[i + 1], '^(%d+):(%d+):(%d+)$')
    local ends_ms = tonumber(until_ms)
    if ends_ms > now then
      quantity = tonumber(quantity)
      holds[flat[i]] = {quantity, token, until_ms}
      held = held + quantity
      if next_end_ms == 0 or ends_ms < next_end_ms then
        next_end_ms = ends_ms
      end
    else
      any_ended = true
    end
  end
  return holds, held, next_end_ms, any_ended
end

-- free_places_of: places a booking without a lock_key could take, from what a script has
-- already read: 0 while a whole-slot lock is on, else capacity - active - held (never < 0).
local function free_places_of(capacity, num_active_bookings, whole_locked, held)
  if whole_locked then
    return 0
  end
  local free = tonumber(capacity) - tonumber(num_active_bookings) - held
  if free < 0 then
    return 0
  end
  return free
end

-- free_places: THE answer to "how many places of this slot are free right now"; any script
-- that has the slot's keys can call it (it only reads). Also returns the places held now.
local function free_places(slot_key, lock_key, places_key, now_ms)
  local slot = redis.call('HMGET', slot_key, 'capacity', 'num_active_bookings')
  local _, held = live_holds(places_key, now_ms)
  local whole_locked = redis.call('EXISTS', lock_key) == 1
  return free_places_of(slot[1] or 0, slot[2] or 0, whole_locked, held), held
end

-- drop_ended_holds: forget holds that ended at or before now_ms (only scripts that write).
local function drop_ended_holds(held_key, places_key, now_ms)
  local ended = redis.call('ZRANGEBYSCORE', held_key, '-inf', now_ms)
  if #ended > 0 then
    redis.call('HDEL', places_key, unpack(ended))
    redis.call('ZREMRANGEBYSCORE', held_key, '-inf', now_ms)
  end
end

-- put_hold: store holder's hold (quantity places until until_ms, fencing token kept).
local function put_hold(held_key, places_key, holder, quantity, token, until_ms)
  redis.call('HSET', places_key, holder, quantity .. ':' .. token .. ':' .. until_ms)
  redis.call('ZADD', held_key, until_ms, holder)
  -- Both keys live as long as their longest hold; a shortened hold leaves them longer,
  -- which costs a little memory and no correctness (only until_ms > now_ms counts).
  for _, key in ipairs({held_key, places_key}) do
    if redis.call('PEXPIRETIME', key) < tonumber(until_ms) then
      redis.call('PEXPIREAT', key, until_ms)
    end
  end
end

-- drop_hold: remove holder's hold on this slot, and the slot from its per-key cap set.
local function drop_hold(held_key, places_key, holds_key, holder, slot_id)
  redis.call('HDEL', places_key, holder)
  redis.call('ZREM', held_key, holder)
  redis.call('ZREM', holds_key, slot_id)
end

-- take_held_place: one of the holder's held places becomes a booking; the hold shrinks by
-- one and ends at zero (then the same key locking again gets a new token).
local function take_held_place(held_key, places_key, holds_key, holder, hold, slot_id)
  local quantity, token, until_ms = hold[1], hold[2], hold[3]
  if quantity > 1 then
    redis.call('HSET', places_key, holder, (quantity - 1) .. ':' .. token .. ':' .. until_ms)
  else
    drop_hold(held_key, places_key, holds_key, holder, slot_id)
  end
end
