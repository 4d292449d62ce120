#!lua
--[[
set_slot_status: enable or disable a slot. A lock in place stays; a disabled slot
cannot be locked or booked until it is enabled again.

  KEYS[1] slot_key       sl:{T}:slot:<slot id>
  KEYS[2] lock_key       sl:{T}:lock:<slot id>
  KEYS[3] resource_key   sl:{T}:resource
  KEYS[4] held_key       sl:{T}:held:<slot id>   partial holds, by until_ms
  KEYS[5] events_key     sl:{T}:events           the change stream (slot.updated)
  KEYS[6] starts_key     sl:{T}:slots            slot ids by start, open and shut bands (lib/bands)
  KEYS[7] lock_ends_key  sl:{T}:lock-ends        locked slot ids by next lock end (settled first)
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] status         "active" or "disabled"
  ARGV[3] now_ms         becomes updated_ms; holds that ended before it no longer count

Returns:
  {"OK", view}           view as lib/slot_view.lua
  {"SLOT_NOT_FOUND"}
]]
--!include places.lua
--!include holds.lua
--!include slot_view.lua
--!include events.lua
--!include bands.lua
--!include slot_index.lua
local slot_key, lock_key, resource_key, held_key, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local starts_key, lock_ends_key = KEYS[6], KEYS[7]
local environment, status, now_ms = ARGV[1], ARGV[2], ARGV[3]

local slot = redis.call('HMGET', slot_key, 'environment', 'id')
if slot[1] ~= environment then
  return {'SLOT_NOT_FOUND'}
end
-- A lock or hold that ended by itself is reported before this change (events in order).
settle_lock_end(lock_ends_key, events_key, slot_key, lock_key, resource_key, held_key, slot[2], now_ms)
redis.call('HSET', slot_key, 'status', status, 'updated_ms', now_ms)
reindex_slot(starts_key, slot_key)
local view = slot_view(slot_key, lock_key, resource_key, held_key, now_ms)
slot_event(events_key, 'slot.updated', view)
return {'OK', view}
