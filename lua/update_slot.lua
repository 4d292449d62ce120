#!lua
--[[
update_slot: change a slot's dates, capacity, lockable flag or metadata.

  KEYS[1] slot_key       sl:{T}:slot:<slot id>
  KEYS[2] lock_key       sl:{T}:lock:<slot id>
  KEYS[3] resource_key   sl:{T}:resource
  KEYS[4] starts_key     sl:{T}:slots        slot ids by start_ms, open and shut bands (lib/bands)
  KEYS[5] neighbour_key  sl:{T}:slot:<id>    the slot starting last before the new end
                                             (as the caller read it; the slot's own key if none)
  KEYS[6] held_key       sl:{T}:held:<slot id>   partial holds, by until_ms
  KEYS[7] events_key     sl:{T}:events           the change stream (slot.updated)
  KEYS[8] lock_ends_key  sl:{T}:lock-ends        locked slot ids by next lock end (settled first)
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] now_ms         becomes updated_ms; holds that ended before it no longer count
  ARGV[3] start_ms       new start, or "" to keep it
  ARGV[4] end_ms         new end, or "" to keep it
  ARGV[5] capacity       new capacity, or "" to keep it
  ARGV[6] lockable       "1" or "0", or "" to keep it
  ARGV[7] metadata       JSON text, or "" to keep it
  ARGV[8] neighbour_id   the neighbour's id, or "" for none

Returns:
  {"OK", view}           view as lib/slot_view.lua
  {"SLOT_NOT_FOUND"}
  {"BAD_RANGE"}          start not before end
  {"OVERLAP", slot id}   the new dates overlap this slot of the same resource
  {"STALE"}              the slot's dates or its neighbour changed since the caller read them
  {"CAPACITY_TOO_LOW", num_active_bookings, held places}   below bookings plus held places
]]
--!include places.lua
--!include holds.lua
--!include slot_view.lua
--!include bands.lua
--!include slot_index.lua
--!include overlap.lua
--!include events.lua
local slot_key, lock_key, resource_key, starts_key, neighbour_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local held_key, events_key, lock_ends_key = KEYS[6], KEYS[7], KEYS[8]
local environment, now_ms = ARGV[1], ARGV[2]
local new_start_ms, new_end_ms, new_capacity = ARGV[3], ARGV[4], ARGV[5]
local new_lockable, new_metadata, neighbour_id = ARGV[6], ARGV[7], ARGV[8]

local slot = redis.call('HMGET', slot_key, 'environment', 'id', 'start_ms', 'end_ms', 'num_active_bookings')
if slot[1] ~= environment then
  return {'SLOT_NOT_FOUND'}
end
local slot_id = slot[2]
-- A lock or hold that ended by itself is reported before this change (events in order).
settle_lock_end(lock_ends_key, events_key, slot_key, lock_key, resource_key, held_key, slot_id, now_ms)
local start_ms = new_start_ms ~= '' and new_start_ms or slot[3]
local end_ms = new_end_ms ~= '' and new_end_ms or slot[4]

if tonumber(start_ms) >= tonumber(end_ms) then
  return {'BAD_RANGE'}
end
local clash = neighbour_check(starts_key, start_ms, end_ms, slot_id, neighbour_id, neighbour_key)
if clash == 'STALE' then
  return {'STALE'}
elseif clash then
  return {'OVERLAP', clash}
end
if new_capacity ~= '' then
  local _, held = live_holds(held_key, now_ms)
  if tonumber(new_capacity) < tonumber(slot[5]) + held then
    return {'CAPACITY_TOO_LOW', tonumber(slot[5]), held}
  end
end

redis.call('HSET', slot_key, 'start_ms', start_ms, 'end_ms', end_ms, 'updated_ms', now_ms)
if new_capacity ~= '' then
  redis.call('HSET', slot_key, 'capacity', new_capacity)
end
if new_lockable ~= '' then
  redis.call('HSET', slot_key, 'lockable', new_lockable)
end
if new_metadata ~= '' then
  redis.call('HSET', slot_key, 'metadata', new_metadata)
end
reindex_slot(starts_key, slot_key)  -- its start or its capacity may have changed
local view = slot_view(slot_key, lock_key, resource_key, held_key, now_ms)
slot_event(events_key, 'slot.updated', view)
return {'OK', view}
