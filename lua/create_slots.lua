#!lua
--[[
create_slots: add one or many slots to a resource, all or nothing.

  KEYS[1] resource_key   sl:{T}:resource
  KEYS[2] starts_key     sl:{T}:slots        slot ids by start_ms, open and shut bands (lib/bands)
  KEYS[3] events_key     sl:{T}:events       the change stream (slot.created)
  KEYS[4..] per slot     its new hash sl:{T}:slot:<slot id>, then its neighbour's hash
                         (the existing slot starting last before its end; its own key if none)
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] field_count    how many field/value entries each slot carries
  ARGV[3..] per slot     slot id, start_ms, end_ms, neighbour id ("" for none), then
                         field_count entries for HSET
                         (the new slots were checked against each other by the caller)

Returns:
  {"OK", resource status, booking_disabled_before, timezone}
  {"RESOURCE_NOT_FOUND"}
  {"OVERLAP", slot id}   a new slot overlaps this existing one; nothing was written
  {"STALE"}              a neighbour changed since the caller read it: read again
]]
--!include bands.lua
--!include overlap.lua
--!include places.lua
--!include slot_view.lua
--!include events.lua
local resource_key, starts_key, events_key = KEYS[1], KEYS[2], KEYS[3]
local environment, field_count = ARGV[1], tonumber(ARGV[2])

if redis.call('HGET', resource_key, 'environment') ~= environment then
  return {'RESOURCE_NOT_FOUND'}
end

local block = 4 + field_count
local slot_count = (#ARGV - 2) / block
for i = 0, slot_count - 1 do
  local at = 3 + i * block
  local clash = neighbour_check(starts_key, ARGV[at + 1], ARGV[at + 2], '', ARGV[at + 3], KEYS[5 + 2 * i])
  if clash == 'STALE' then
    return {'STALE'}
  elseif clash then
    return {'OVERLAP', clash}
  end
end

for i = 0, slot_count - 1 do
  local at = 3 + i * block
  redis.call('HSET', KEYS[4 + 2 * i], unpack(ARGV, at + 4, at + 3 + field_count))
  -- A new slot is active with every place free: open.
  redis.call('ZADD', starts_key, band_score(ARGV[at + 1], true), ARGV[at])
end
redis.call('HINCRBY', resource_key, 'num_slots', slot_count)
for i = 0, slot_count - 1 do
  slot_event(events_key, 'slot.created', slot_view_of(slot_fields(KEYS[4 + 2 * i]), 0, resource_key, 0))
end
local resource = redis.call('HMGET', resource_key, 'status', 'booking_disabled_before', 'timezone')
return {'OK', resource[1], resource[2], resource[3] or 'UTC'}
