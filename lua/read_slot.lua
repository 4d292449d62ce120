#!lua flags=no-writes
--[[
read_slot: one slot with its lock and its resource's booking window.

  KEYS[1] slot_key       sl:{T}:slot:<slot id>
  KEYS[2] lock_key       sl:{T}:lock:<slot id>
  KEYS[3] resource_key   sl:{T}:resource
  ARGV[1] environment    the caller's environment; another one sees nothing

Returns:
  {"OK", view}           view as lib/slot_view.lua
  {"SLOT_NOT_FOUND"}
]]
--!include slot_view.lua
local slot_key, lock_key, resource_key = KEYS[1], KEYS[2], KEYS[3]
local environment = ARGV[1]

if redis.call('HGET', slot_key, 'environment') ~= environment then
  return {'SLOT_NOT_FOUND'}
end
return {'OK', slot_view(slot_key, lock_key, resource_key)}
