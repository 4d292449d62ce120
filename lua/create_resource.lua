#!lua
--[[
create_resource: store a new resource under a home tag nobody else holds.

  KEYS[1] resource_key   sl:{T}:resource
  ARGV[1..] fields       field/value entries for HSET

Returns:
  {"OK"}
  {"TAG_TAKEN"}          another resource already owns this home tag: draw a new id
]]
local resource_key = KEYS[1]

if redis.call('EXISTS', resource_key) == 1 then
  return {'TAG_TAKEN'}
end
redis.call('HSET', resource_key, unpack(ARGV))
return {'OK'}
