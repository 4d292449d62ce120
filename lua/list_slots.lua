#!lua flags=no-writes
--[[
list_slots: one page of a resource's slots, filtered, with the exact number that match,
read in one atomic step (see the README's key schema for why it is exact).

  KEYS[1] resource_key   sl:{T}:resource
  KEYS[2] starts_key     sl:{T}:slots        slot ids by start, open and shut bands (lib/bands)
  KEYS[3] lock_ends_key  sl:{T}:lock-ends    every slot whose lock or holds may still run, by
                                             its next end (lib/events; a past end not swept yet
                                             may hide a later hold, so all are checked)
  KEYS[4] slot_prefix    sl:{T}:slot:        a name prefix, not a key: a listed slot's hash is
                                             this plus its id, so it shares the resource's tag
  KEYS[5] lock_prefix    sl:{T}:lock:        the same for a listed slot's lock
  KEYS[6] held_prefix    sl:{T}:held:        the same for a listed slot's partial holds
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] now_ms         the service's clock: locks ended and booking windows closed by then
  ARGV[3] available      "true", "false", or "" for either
  ARGV[4] from_ms        slots starting at or after it, or ""
  ARGV[5] until_ms       slots ending at or before it, or ""
  ARGV[6] offset         how many matching slots to skip
  ARGV[7] limit          how many to return (0: only the total)
  ARGV[8] with_views     "1": each slot's view; "0": each slot's start and id only

Returns:
  {"OK", total, resource status, booking_disabled_before, resource timezone, then per slot:
   with_views: slot fields as JSON, locked_until_ms (0 if unlocked), places held now;
   else: start_ms, slot id}
  {"NO_RESOURCE"}        no such resource in this environment: an empty list
]]
--!include bands.lua
--!include places.lua
--!include blocked.lua
--!include pages.lua
--!include slot_view.lua
local resource_key, starts_key, lock_ends_key, slot_prefix, lock_prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local held_prefix = KEYS[6]
local environment, now_ms, available = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local from_ms, until_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local offset, limit, with_views = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8] == '1'

local resource = redis.call('HMGET', resource_key, 'environment', 'status', 'booking_disabled_before', 'timezone')
if resource[1] ~= environment then
  return {'NO_RESOURCE'}
end
local disabled_before_s = tonumber(resource[3] or '0')

-- Slots never overlap, so by start they are ordered by end too: those ending by
-- until_ms start before it, except perhaps the one starting last before it.
local high_ms = until_ms
if until_ms then
  local last_start, last_id = nil, nil
  for _, is_open in ipairs({true, false}) do
    local found = band_source(starts_key, is_open, nil, until_ms)
    local item = found.at(found.count - 1, 1)[1]
    if item and (not last_start or item[1] > last_start) then
      last_start, last_id = item[1], item[2]
    end
  end
  if last_id and tonumber(redis.call('HGET', slot_prefix .. last_id, 'end_ms')) > until_ms then
    high_ms = last_start
  end
end

-- Open slots that a live lock or holds block right now, sorted: few, since locks are short.
-- Every slot with a live lock or hold is in lock-ends (track_lock_end keeps it there until
-- nothing holds it), so this finds them all; an entry whose end passed stays until the
-- expiry sweep settles it, and the service sweeps a resource before it lists it, so
-- the scan costs about the live locks and holds, never the resource's slots.
local function blocked_between(low_ms, before_ms)
  local blocked = {}
  for _, slot_id in ipairs(redis.call('ZRANGE', lock_ends_key, 0, -1)) do
    local score = redis.call('ZSCORE', starts_key, slot_id)
    if score and in_first_band(score) then
      local start_ms = tonumber(score)
      if start_ms >= low_ms and (not before_ms or start_ms < before_ms)
          and blocked_now(slot_prefix .. slot_id, lock_prefix .. slot_id, held_prefix .. slot_id, now_ms) then
        blocked[#blocked + 1] = {start_ms, slot_id}
      end
    end
  end
  table.sort(blocked, precedes)
  return blocked
end

local source
if available == '' then
  source = both_bands(starts_key, from_ms, high_ms)
elseif resource[2] ~= 'published' then
  source = available == 'true' and EMPTY or both_bands(starts_key, from_ms, high_ms)
else
  -- Booking is open for a slot starting after now + booking_disabled_before.
  local opens_from_ms = now_ms + disabled_before_s * 1000 + 1
  local low_ms = math.max(from_ms or opens_from_ms, opens_from_ms)
  local blocked = blocked_between(low_ms, high_ms)
  if available == 'true' then
    source = minus_source(band_source(starts_key, true, low_ms, high_ms), blocked)
  else
    local closed_before = high_ms and math.min(high_ms, opens_from_ms) or opens_from_ms
    source = chained_source(
      both_bands(starts_key, from_ms, closed_before),
      merged_source(band_source(starts_key, false, low_ms, high_ms), list_source(blocked)))
  end
end

local reply = {'OK', source.count, resource[2] or '', resource[3] or '0', resource[4] or 'UTC'}
for _, item in ipairs(source.at(offset, limit)) do
  if with_views then
    local locked_until_ms = redis.call('PEXPIRETIME', lock_prefix .. item[2])
    local _, held = live_holds(held_prefix .. item[2], now_ms)
    reply[#reply + 1] = cjson.encode(slot_fields(slot_prefix .. item[2]))
    reply[#reply + 1] = math.max(locked_until_ms, 0)
    reply[#reply + 1] = held
  else
    reply[#reply + 1] = item[1]
    reply[#reply + 1] = item[2]
  end
end
return reply
