#!lua
--[[
index_resource: bring an environment's resource indexes up to one revision of a resource,
unless they already show a later one. A resource's hash lives in its own hash tag and its
environment's indexes in another, so no script can change both: the store marks the
resource as changing first, changes the hash, then calls this with what the hash now
says; a list that finds a mark left by a crash calls it with what the hash says then.

  KEYS[1] all_key        sl:{env:E}:resources          resource ids by creation, draft and
                                                       published bands (lib/bands)
  KEYS[2] state_key      sl:{env:E}:resource-index     resource id -> "revision|status|name hash",
                                                       or "gone"
  KEYS[3] names_prefix   sl:{env:E}:resources:name:    a name prefix, not a key: the index of
                                                       one name is this plus the name's hash
  KEYS[4] changes_key    sl:{env:E}:resource-changes   resources being changed, by mark (ms)
  ARGV[1] resource_id
  ARGV[2] revision       the hash's revision (update_resource counts them)
  ARGV[3] status         "draft" or "published"; "" once the resource is gone for good
  ARGV[4] name_hash      SHA-256 hex (first 32) of its name
  ARGV[5] created_ms     its creation, the lists' order
  ARGV[6] settled_ms     the change mark is removed if it was set at or before this ("" keeps it)

Returns:
  {"OK"}
]]
--!include bands.lua
local all_key, state_key, names_prefix, changes_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local resource_id, revision, status, name_hash = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local created_ms, settled_ms = ARGV[5], ARGV[6]

local shown = redis.call('HGET', state_key, resource_id)
local shown_revision, shown_name = -1, nil
if shown == 'gone' then
  shown_revision = math.huge
elseif shown then
  local revision_text, name = string.match(shown, '^(%d+)|%a+|(%x*)$')
  shown_revision, shown_name = tonumber(revision_text), name
end

if status == '' then
  redis.call('ZREM', all_key, resource_id)
  if shown_name then
    redis.call('ZREM', names_prefix .. shown_name, resource_id)
  end
  redis.call('HSET', state_key, resource_id, 'gone')  -- ids are never reused
elseif revision >= shown_revision then
  if shown_name and shown_name ~= name_hash then
    redis.call('ZREM', names_prefix .. shown_name, resource_id)
  end
  local score = band_score(created_ms, status ~= 'published')
  redis.call('ZADD', all_key, score, resource_id)
  redis.call('ZADD', names_prefix .. name_hash, score, resource_id)
  redis.call('HSET', state_key, resource_id, string.format('%d', revision) .. '|' .. status .. '|' .. name_hash)
end

if settled_ms ~= '' then
  local mark = redis.call('ZSCORE', changes_key, resource_id)
  if mark and tonumber(mark) <= tonumber(settled_ms) then
    redis.call('ZREM', changes_key, resource_id)
  end
end
return {'OK'}
