#!lua flags=no-writes
--[[
list_resources: one page of an environment's resource ids by creation, filtered by name
and status, with the exact number that match, in one atomic step.

  KEYS[1] all_key        sl:{env:E}:resources          resource ids by creation, draft and
                                                       published bands (lib/bands)
  KEYS[2] names_prefix   sl:{env:E}:resources:name:    a name prefix, not a key: the index of
                                                       one name is this plus the name's hash
  ARGV[1] name_hash      SHA-256 hex (first 32) of the name asked for, or ""
  ARGV[2] status         "draft", "published", or "" for either
  ARGV[3] offset         how many matching resources to skip
  ARGV[4] limit          how many to return
  ARGV[5..] unsettled    ids to leave out: being created or deleted right now

Returns:
  {"OK", total, resource ids...}
]]
--!include bands.lua
--!include pages.lua
local all_key, names_prefix = KEYS[1], KEYS[2]
local name_hash, status, offset, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

local index_key = name_hash ~= '' and (names_prefix .. name_hash) or all_key

-- A band of the index without the unsettled ids it holds.
local function band_without_unsettled(is_draft)
  local band = band_source(index_key, is_draft, nil, nil)
  local excluded = {}
  for i = 5, #ARGV do
    local score = redis.call('ZSCORE', index_key, ARGV[i])
    if score and in_first_band(score) == is_draft then
      excluded[#excluded + 1] = {sort_key_of(score), ARGV[i]}
    end
  end
  table.sort(excluded, precedes)
  return minus_source(band, excluded)
end

local source
if status == '' then
  source = merged_source(band_without_unsettled(true), band_without_unsettled(false))
else
  source = band_without_unsettled(status == 'draft')
end

local reply = {'OK', source.count}
for _, item in ipairs(source.at(offset, limit)) do
  reply[#reply + 1] = item[2]
end
return reply
