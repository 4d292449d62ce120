-- Partial holds and free places (API.md "Partial holds").
--
-- The holds of one slot live in one sorted set beside it, under its hash tag:
--   held_key  sl:{T}:held:<slot id>  zset  "<holder>:<quantity>:<token>" scored by until_ms
-- so one ZRANGEBYSCORE answers "how many places are held now", and the deadlines stay in
-- order for a sweeper. A hold counts while until_ms > now_ms: an ended hold's places are
-- free at that instant, whether or not Redis has deleted it yet, so no sweeper is needed
-- for the invariant
--   num_active_bookings + held places <= capacity.
-- The set gets a PEXPIREAT at its longest deadline, so nothing outlives its holds, and
-- exists only while a hold is on the slot.

-- The holds among `entries` (a WITHSCORES reply, by until_ms) that run at now_ms, as
-- holder -> {quantity (a number), token, until_ms (both text, as stored: a Lua number
-- could print an epoch in exponent form), member}, their total quantity, the earliest
-- until_ms among them (0 if none), and how many entries have ended.
local function holds_among(entries, now_ms)
  local holds, held, next_end_ms, ended = {}, 0, 0, 0
  local now = tonumber(now_ms)
  for i = 1, #entries, 2 do
    if tonumber(entries[i + 1]) <= now then
      ended = ended + 1
    else
      local holder, quantity, token = string.match(entries[i], '^(%x+):(%d+):(%d+)$')
      quantity = tonumber(quantity)
      holds[holder] = {quantity, token, entries[i + 1], entries[i]}
      held = held + quantity
      if next_end_ms == 0 then
        next_end_ms = tonumber(entries[i + 1])  -- the first is the earliest
      end
    end
  end
  return holds, held, next_end_ms, ended
end

-- live_holds: holds_among the holds running at now_ms.
local function live_holds(held_key, now_ms)
  return holds_among(redis.call('ZRANGEBYSCORE', held_key, '(' .. now_ms, '+inf', 'WITHSCORES'), now_ms)
end

-- every_hold: holds_among all the slot's entries, ended or not, so that a script about to
-- write can tell whether there are ended ones to drop (usually none: one call spared).
local function every_hold(held_key, now_ms)
  -- The range as text: a number argument costs Redis a printf (see slot_event, events.lua).
  return holds_among(redis.call('ZRANGE', held_key, '0', '-1', 'WITHSCORES'), now_ms)
end

-- The earliest until_ms among the holds of holders other than `holder`; 0 when none.
local function first_end_of_others(holds, holder)
  local first_end_ms = 0
  for other, hold in pairs(holds) do
    local ends_ms = tonumber(hold[3])
    if other ~= holder and (first_end_ms == 0 or ends_ms < first_end_ms) then
      first_end_ms = ends_ms
    end
  end
  return first_end_ms
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
-- that has the slot's keys can call it (it only reads). Also returns the places held now
-- and when the first running hold ends (0 if none): free places grow by themselves then.
local function free_places(slot_key, lock_key, held_key, now_ms)
  local slot = redis.call('HMGET', slot_key, 'capacity', 'num_active_bookings')
  local _, held, next_end_ms = live_holds(held_key, now_ms)
  local whole_locked = redis.call('EXISTS', lock_key) == 1
  return free_places_of(slot[1] or 0, slot[2] or 0, whole_locked, held), held, next_end_ms
end
