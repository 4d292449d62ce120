#!lua
--[[
delete_resource: remove a resource with every slot, lock and booking it owns.

  KEYS[1] resource_key            sl:{T}:resource
  KEYS[2] starts_key              sl:{T}:slots           slot ids by start_ms
  KEYS[3] resource_bookings_key   sl:{T}:bookings
  KEYS[4] events_key              sl:{T}:events          the change stream: resource.deleted, kept an hour
  KEYS[5] lock_ends_key           sl:{T}:lock-ends
  KEYS[6..] owned keys            per slot: its hash, lock, booking index and holds; then
                                  each booking hash
  ARGV[1] environment             the caller's environment; another one sees nothing
  ARGV[2] resource_id             the id the caller asked for (a home tag holds one resource)
  ARGV[3] slot_count              how many slot ids follow
  ARGV[4..] slot ids, then booking ids, as the caller read them

Returns:
  {"OK"}
  {"RESOURCE_NOT_FOUND"}
  {"STALE"}                       slots or bookings changed since the caller read them: read again
]]
--!include places.lua
--!include slot_view.lua
--!include events.lua
local resource_key, starts_key, resource_bookings_key = KEYS[1], KEYS[2], KEYS[3]
local events_key, lock_ends_key = KEYS[4], KEYS[5]
local environment, resource_id, slot_count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local booking_count = #ARGV - 3 - slot_count

local resource = redis.call('HMGET', resource_key, 'environment', 'id')
if resource[1] ~= environment or resource[2] ~= resource_id then
  return {'RESOURCE_NOT_FOUND'}
end

local function same_members(index_key, first, count)
  if redis.call('ZCARD', index_key) ~= count then
    return false
  end
  for i = first, first + count - 1 do
    if not redis.call('ZSCORE', index_key, ARGV[i]) then
      return false
    end
  end
  return true
end
if not same_members(starts_key, 4, slot_count)
    or not same_members(resource_bookings_key, 4 + slot_count, booking_count) then
  return {'STALE'}
end

for i = 6, #KEYS do
  redis.call('DEL', KEYS[i])
end
redis.call('DEL', resource_key, starts_key, resource_bookings_key, lock_ends_key)
-- Its last event ends every stream; the stream stays an hour for streams that resume.
append_event(events_key, 'resource.deleted', cjson.encode({resource_id = resource_id}))
redis.call('PEXPIRE', events_key, EVENTS_KEPT_MS)
return {'OK'}
