#!lua
--[[
update_resource: set some fields of a resource (its name, status, settings, metadata), and
count the change in its revision (index_resource keeps the latest revision it is given).

  KEYS[1] resource_key   sl:{T}:resource
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] resource_id    the id the caller asked for (a home tag holds one resource)
  ARGV[3..] fields       field/value entries for HSET, updated_ms among them

Returns:
  {"OK", resource fields (HGETALL)}
  {"RESOURCE_NOT_FOUND"}
]]
local resource_key = KEYS[1]
local environment, resource_id = ARGV[1], ARGV[2]

local resource = redis.call('HMGET', resource_key, 'environment', 'id')
if resource[1] ~= environment or resource[2] ~= resource_id then
  return {'RESOURCE_NOT_FOUND'}
end
redis.call('HSET', resource_key, unpack(ARGV, 3))
redis.call('HINCRBY', resource_key, 'revision', 1)
return {'OK', redis.call('HGETALL', resource_key)}
