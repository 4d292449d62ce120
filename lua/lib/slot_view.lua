-- slot_view: what a response needs to show one slot, read inside the script
-- that changed it so the answer costs no second round trip.
-- Returns {slot fields as one JSON object, locked_until_ms (0 if unlocked), resource status,
-- booking_disabled_before, resource timezone (the slot's dates are shown in it), places held
-- now by partial holds}. One JSON string instead of HGETALL's field/value array: the service
-- decodes it in one msgspec call, where the array cost a Python object per field and a dict
-- to read them (the largest part of rendering a lock's answer). Scripts that include this
-- and call slot_view include places.lua too.

-- The slot hash as a table of its fields (all strings, as Redis keeps them). Read as a
-- RESP3 map, HGETALL's reply is that table, built by Redis in C; turning RESP2's flat
-- array into it in Lua cost more than the command itself. (Only this call speaks RESP3:
-- other replies keep the RESP2 shapes the scripts are written for.)
local function slot_fields(slot_key)
  redis.setresp(3)
  local fields = redis.call('HGETALL', slot_key).map
  redis.setresp(2)
  return fields
end

-- The view from fields the script has already read (and kept current), the lock's
-- deadline and the held places it already knows: lock and unlock, the hot path, spare
-- reads this way.
local function slot_view_of(fields, locked_until_ms, resource_key, held)
  local resource = redis.call('HMGET', resource_key, 'status', 'booking_disabled_before', 'timezone')
  return {
    cjson.encode(fields), locked_until_ms, resource[1] or '', resource[2] or '0',
    resource[3] or 'UTC', held,
  }
end

-- What holds the slot at now_ms: its whole-slot lock's deadline (0 if none), the places
-- its running partial holds keep, and when the first of those ends (0 if none).
local function lock_and_holds(lock_key, held_key, now_ms)
  local _, held, hold_end_ms = live_holds(held_key, now_ms)
  return math.max(redis.call('PEXPIRETIME', lock_key), 0), held, hold_end_ms
end

local function slot_view(slot_key, lock_key, resource_key, held_key, now_ms)
  local locked_until_ms, held = lock_and_holds(lock_key, held_key, now_ms)
  return slot_view_of(slot_fields(slot_key), locked_until_ms, resource_key, held)
end
