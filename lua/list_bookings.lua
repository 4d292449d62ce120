#!lua flags=no-writes
--[[
list_bookings: one page of a resource's (or one slot's) bookings by creation, filtered by
status, with the exact number that match, in one atomic step.

  KEYS[1] resource_key   sl:{T}:resource
  KEYS[2] index_key      sl:{T}:bookings or sl:{T}:slot-bookings:<slot id>   booking ids by
                         creation, active and cancelled bands (lib/bands)
  KEYS[3] booking_prefix sl:{T}:booking:    a name prefix, not a key: a listed booking's hash
                                            is this plus its id, so it shares the resource's tag
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] resource_id    the resource the caller asked for, or "" for whichever owns the tag
  ARGV[3] status         "active", "cancelled", or "" for either
  ARGV[4] offset         how many matching bookings to skip
  ARGV[5] limit          how many to return
  ARGV[6] with_records   "1": each booking's fields as JSON; "0": its created_ms and id only

Returns:
  {"OK", total, then per booking: its fields as JSON, or created_ms and id}
  {"NO_RESOURCE"}        no such resource in this environment: an empty list
]]
--!include bands.lua
--!include pages.lua
local resource_key, index_key, booking_prefix = KEYS[1], KEYS[2], KEYS[3]
local environment, resource_id, status = ARGV[1], ARGV[2], ARGV[3]
local offset, limit, with_records = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1'

local resource = redis.call('HMGET', resource_key, 'environment', 'id')
if resource[1] ~= environment or (resource_id ~= '' and resource[2] ~= resource_id) then
  return {'NO_RESOURCE'}
end

local source
if status == '' then
  source = both_bands(index_key, nil, nil)
else
  source = band_source(index_key, status == 'active', nil, nil)
end

local reply = {'OK', source.count}
for _, item in ipairs(source.at(offset, limit)) do
  if with_records then
    local flat = redis.call('HGETALL', booking_prefix .. item[2])
    local fields = {}
    for i = 1, #flat, 2 do
      fields[flat[i]] = flat[i + 1]
    end
    reply[#reply + 1] = cjson.encode(fields)
  else
    reply[#reply + 1] = item[1]
    reply[#reply + 1] = item[2]
  end
end
return reply
