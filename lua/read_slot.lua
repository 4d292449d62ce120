#!lua flags=no-writes
--[[
read_slot: one slot with its lock, its held places and its resource's booking window.

  KEYS[1] slot_key       sl:{T}:slot:<slot id>
  KEYS[2] lock_key       sl:{T}:lock:<slot id>
  KEYS[3] resource_key   sl:{T}:resource
  KEYS[4] held_key       sl:{T}:held:<slot id>   partial holds, by until_ms
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] now_ms         the service's clock: holds that ended before it no longer count

Returns:
  {"OK", view}           view as lib/slot_view.lua
  {"SLOT_NOT_FOUND"}
]]
--!include places.lua
--!include slot_view.lua
local slot_key, lock_key, resource_key, held_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local environment, now_ms = ARGV[1], ARGV[2]

if redis.call('HGET', slot_key, 'environment') ~= environment then
  return {'SLOT_NOT_FOUND'}
end
return {'OK', slot_view(slot_key, lock_key, resource_key, held_key, now_ms)}
