#!lua
--[[
unlock_slot: release what the caller's lock_key has on a slot (its whole-slot lock, or its
whole partial hold); compare and delete in one step.

  KEYS[1] slot_key       sl:{T}:slot:<slot id>
  KEYS[2] lock_key       sl:{T}:lock:<slot id>      "<holder>:<token>"
  KEYS[3] resource_key   sl:{T}:resource
  KEYS[4] holds_key      sl:{T}:holds:<holder>     slot ids this lock_key holds here
  KEYS[5] held_key       sl:{T}:held:<slot id>      partial holds "<holder>:<quantity>:<token>", by until_ms
  KEYS[6] lock_ends_key  sl:{T}:lock-ends          locked slot ids by next lock end (the expiry sweep)
  KEYS[7] events_key     sl:{T}:events             the resource's change stream (slot.unlocked)
  ARGV[1] environment    the caller's environment; another one sees nothing
  ARGV[2] holder         SHA-256 hex of the client's lock_key
  ARGV[3] now_ms         the service's clock: holds that ended before it no longer count

Returns:
  {"OK", view}           released, or there was nothing to release (a retried unlock is harmless)
  {"SLOT_NOT_FOUND"}
  {"NOT_OWNER"}          held whole under another lock_key; the lock stays
]]
--!include places.lua
--!include holds.lua
--!include slot_view.lua
--!include events.lua
local slot_key, lock_key, resource_key, holds_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local held_key, lock_ends_key, events_key = KEYS[5], KEYS[6], KEYS[7]
local environment, holder, now_ms = ARGV[1], ARGV[2], ARGV[3]

local slot = slot_fields(slot_key)
if slot.environment ~= environment then
  return {'SLOT_NOT_FOUND'}
end

local current = redis.call('GET', lock_key)
if not current then  -- while Redis has the lock, nothing of the slot's is due to settle
  settle_lock_end(lock_ends_key, events_key, slot_key, lock_key, resource_key, held_key, slot.id, now_ms)
else
  if string.match(current, '^(%x+):') ~= holder then
    return {'NOT_OWNER'}
  end
  redis.call('DEL', lock_key)
  redis.call('ZREM', holds_key, slot.id)
end
local holds, held = live_holds(held_key, now_ms)
local own = holds[holder]
if own then
  held = held - own[1]
  drop_hold(held_key, holds_key, own, slot.id)
end
local view = slot_view_of(slot, 0, resource_key, held)
if current or own then
  -- Its lock is gone (another's would have been refused): others' holds are what is left.
  track_lock_end_at(lock_ends_key, slot.id, first_end_of_others(holds, holder))
  slot_event(events_key, 'slot.unlocked', view)
end
return {'OK', view}
