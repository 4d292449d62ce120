#!lua
--[[
unlock_slot: release a slot's lock if the caller holds it; compare and delete in one step.

  KEYS[1] slot_key       sl:{T}:slot:<slot id>
  KEYS[2] lock_key       sl:{T}:lock:<slot id>      "<holder>:<token>"
  KEYS[3] resource_key   sl:{T}:resource
  KEYS[4] holds_key      sl:{T}:holds:<holder>     slot ids this lock_key holds here
  KEYS[5] lock_ends_key  sl:{T}:lock-ends          locked slot ids by lock end (the expiry sweep)
  KEYS[6] events_key     sl:{T}:events             the resource's change stream (slot.unlocked)
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] holder         SHA-256 hex of the client's lock_key

Returns:
  {"OK", view}           released, or there was no lock (a retried unlock is harmless)
  {"SLOT_NOT_FOUND"}
  {"NOT_OWNER"}          held under another lock_key; the lock stays
]]
--!include slot_view.lua
--!include events.lua
local slot_key, lock_key, resource_key, holds_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local lock_ends_key, events_key = KEYS[5], KEYS[6]
local environment, holder = ARGV[1], ARGV[2]

local slot = slot_fields(slot_key)
if slot.environment ~= environment then
  return {'SLOT_NOT_FOUND'}
end

settle_lock_end(lock_ends_key, events_key, slot_key, lock_key, resource_key, slot.id)
local current = redis.call('GET', lock_key)
if current then
  if string.match(current, '^(%x+):') ~= holder then
    return {'NOT_OWNER'}
  end
  redis.call('DEL', lock_key)
  redis.call('ZREM', holds_key, slot.id)
  track_lock_end(lock_ends_key, slot.id, 0)
  slot_event(events_key, 'slot.unlocked', slot_view_of(slot, 0, resource_key))
end
return {'OK', slot_view_of(slot, 0, resource_key)}
