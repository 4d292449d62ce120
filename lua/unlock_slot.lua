#!lua
--[[
unlock_slot: release a slot's lock if the caller holds it; compare and delete in one step.

  KEYS[1] slot_key       sl:{T}:slot:<slot id>
  KEYS[2] lock_key       sl:{T}:lock:<slot id>      "<holder>:<token>"
  KEYS[3] resource_key   sl:{T}:resource
  KEYS[4] holds_key      sl:{T}:holds:<holder>     slot ids this lock_key holds here
  KEYS[5] locks_key      sl:{T}:locks              slot ids of the resource by lock deadline (lists)
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] holder         SHA-256 hex of the client's lock_key

Returns:
  {"OK", view}           released, or there was no lock (a retried unlock is harmless)
  {"SLOT_NOT_FOUND"}
  {"NOT_OWNER"}          held under another lock_key; the lock stays
]]
--!include slot_view.lua
local slot_key, lock_key, resource_key, holds_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local locks_key = KEYS[5]
local environment, holder = ARGV[1], ARGV[2]

local slot = slot_fields(slot_key)
if slot.environment ~= environment then
  return {'SLOT_NOT_FOUND'}
end

local current = redis.call('GET', lock_key)
if current then
  if string.match(current, '^(%x+):') ~= holder then
    return {'NOT_OWNER'}
  end
  redis.call('DEL', lock_key)
  redis.call('ZREM', holds_key, slot.id)
  redis.call('ZREM', locks_key, slot.id)
end
return {'OK', slot_view_of(slot, 0, resource_key)}
