#!lua
--[[
lock_slot: take the lock on a slot, or move the lock its holder already has.

  KEYS[1] slot_key       sl:{T}:slot:<slot id>
  KEYS[2] lock_key       sl:{T}:lock:<slot id>      "<holder>:<token>", expires at until_ms
  KEYS[3] resource_key   sl:{T}:resource
  KEYS[4] holds_key      sl:{T}:holds:<holder>     slot ids this lock_key holds here, by until_ms
  KEYS[5] lock_ends_key  sl:{T}:lock-ends          locked slot ids by lock end (the expiry sweep)
  KEYS[6] events_key     sl:{T}:events             the resource's change stream (slot.locked)
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] holder         SHA-256 hex of the client's lock_key (the key itself never reaches Redis)
  ARGV[3] until_ms       lock_until in epoch ms; Redis drops the lock then (SET PXAT)
  ARGV[4] now_ms         the service's clock: holds that ended before it no longer count
  ARGV[5] max_holds      how many slots of this resource one lock_key may hold at once

Returns:
  {"OK", token, view}          token: fencing token, kept when the holder moves its own lock
  {"SLOT_NOT_FOUND"}
  {"NOT_LOCKABLE"}
  {"SLOT_DISABLED"}
  {"SLOT_FULL"}                no free place to hold
  {"LOCKED", locked_until_ms}  held under another lock_key
  {"HOLD_CAP", max_holds}      this lock_key already holds max_holds slots of the resource
]]
--!include slot_view.lua
--!include events.lua
local slot_key, lock_key, resource_key, holds_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local lock_ends_key, events_key = KEYS[5], KEYS[6]
local environment, holder, until_ms = ARGV[1], ARGV[2], ARGV[3]
local now_ms, max_holds = ARGV[4], tonumber(ARGV[5])

-- One read of the slot serves the checks and the answer (only lock_seq changes here).
local slot = slot_fields(slot_key)
if slot.environment ~= environment then
  return {'SLOT_NOT_FOUND'}
end
if slot.lockable ~= '1' then
  return {'NOT_LOCKABLE'}
end
if slot.status ~= 'active' then
  return {'SLOT_DISABLED'}
end

settle_lock_end(lock_ends_key, events_key, slot_key, lock_key, resource_key, slot.id)
local token
local current = redis.call('GET', lock_key)
if current then
  local current_holder, current_token = string.match(current, '^(%x+):(%d+)$')
  if current_holder ~= holder then
    return {'LOCKED', redis.call('PEXPIRETIME', lock_key)}
  end
  token = tonumber(current_token)
else
  if tonumber(slot.num_active_bookings) >= tonumber(slot.capacity) then
    return {'SLOT_FULL'}
  end
  -- One lock_key may not sweep a resource: count what it holds here right now.
  redis.call('ZREMRANGEBYSCORE', holds_key, '-inf', now_ms)
  if redis.call('ZCARD', holds_key) >= max_holds then
    return {'HOLD_CAP', max_holds}
  end
  token = redis.call('HINCRBY', slot_key, 'lock_seq', 1)
  slot.lock_seq = tostring(token)
end

redis.call('SET', lock_key, holder .. ':' .. token, 'PXAT', until_ms)
redis.call('ZADD', holds_key, until_ms, slot.id)
-- The set lives as long as its longest hold; a shortened hold leaves it longer, which
-- costs a little memory and no correctness (counting drops ended holds first).
if redis.call('PEXPIRETIME', holds_key) < tonumber(until_ms) then
  redis.call('PEXPIREAT', holds_key, until_ms)
end
local view = slot_view_of(slot, tonumber(until_ms), resource_key)
track_lock_end(lock_ends_key, slot.id, until_ms)
slot_event(events_key, 'slot.locked', view)
return {'OK', token, view}
