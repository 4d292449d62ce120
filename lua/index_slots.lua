#!lua
--[[
index_slots: one step of the start-up migration to the list indexes, for one resource:
the next slots by start of an index written before them (every score a plain start) get
their band, their lock's next end and their bookings' bands. Each step is atomic and
harmless to repeat; the last one marks the resource, so a later run skips it.

  KEYS[1] resource_key            sl:{T}:resource           gets index_version when done
  KEYS[2] starts_key              sl:{T}:slots              slot ids by start, open and shut bands
  KEYS[3] lock_ends_key           sl:{T}:lock-ends          locked slot ids by next lock end
  KEYS[4] resource_bookings_key   sl:{T}:bookings           booking ids by creation, two bands
  KEYS[5] slot_prefix             sl:{T}:slot:              name prefixes, not keys: a slot's hash,
  KEYS[6] lock_prefix             sl:{T}:lock:              lock and bookings index, and a booking's
  KEYS[7] slot_bookings_prefix    sl:{T}:slot-bookings:     hash are these plus its id, all in the
  KEYS[8] booking_prefix          sl:{T}:booking:           resource's hash tag
  KEYS[9] held_prefix             sl:{T}:held:              (and a slot's partial holds)
  ARGV[1] after_ms                the start of the last slot the previous step did, or ""
  ARGV[2] count                   how many slots one step does
  ARGV[3] version                 the index version this migration builds

Returns:
  {"MORE", start_ms}     call again with this start as after_ms
  {"DONE"}               the resource is indexed (now, or by an earlier run), or gone
]]
--!include bands.lua
--!include slot_index.lua
local resource_key, starts_key, lock_ends_key, resource_bookings_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local slot_prefix, lock_prefix, slot_bookings_prefix, booking_prefix = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local held_prefix = KEYS[9]
local after_ms, count, version = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local marker = redis.call('HGET', resource_key, 'index_version')
if redis.call('EXISTS', resource_key) == 0 or tonumber(marker or '0') >= version then
  return {'DONE'}
end

-- Unmigrated slots all sit in the first band; those found shut move out of it.
local low = after_ms == '' and string.format('%d', -BAND_HALF) or ('(' .. after_ms)
local batch = redis.call('ZRANGEBYSCORE', starts_key, low, '(' .. string.format('%d', BAND_HALF),
  'WITHSCORES', 'LIMIT', 0, count)
for i = 1, #batch, 2 do
  local slot_id = batch[i]
  reindex_slot(starts_key, slot_prefix .. slot_id)
  -- A lock or holds taken before the lists existed: the slot's next end, where lists and
  -- the expiry sweep look (a whole lock and holds never share a slot). NX: an entry the
  -- new version wrote meanwhile is already right. A hold that has ended by now is
  -- settled by the next sweep, which moves the entry on to the slot's next end.
  local lock_end_ms = redis.call('PEXPIRETIME', lock_prefix .. slot_id)
  local first_hold = redis.call('ZRANGE', held_prefix .. slot_id, 0, 0, 'WITHSCORES')
  if lock_end_ms > 0 then
    redis.call('ZADD', lock_ends_key, 'NX', lock_end_ms, slot_id)
  elseif first_hold[2] then
    redis.call('ZADD', lock_ends_key, 'NX', first_hold[2], slot_id)
  end
  local slot_bookings_key = slot_bookings_prefix .. slot_id
  for _, booking_id in ipairs(redis.call('ZRANGE', slot_bookings_key, 0, -1)) do
    local booking = redis.call('HMGET', booking_prefix .. booking_id, 'status', 'created_ms')
    if booking[2] then
      local score = band_score(booking[2], booking[1] ~= 'cancelled')
      redis.call('ZADD', slot_bookings_key, score, booking_id)
      redis.call('ZADD', resource_bookings_key, score, booking_id)
    end
  end
end

if #batch / 2 == count then
  return {'MORE', batch[#batch]}
end
redis.call('HSET', resource_key, 'index_version', version)
return {'DONE'}
