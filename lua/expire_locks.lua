#!lua
--[[
expire_locks: write the slot.unlocked of every given slot whose lock or partial hold ended
by itself and has no event yet. Idempotent: a slot already settled (by another pod's
sweep or by a script that changed the slot since) is skipped, so any number of pods may
run it.

  KEYS[1] lock_ends_key  sl:{T}:lock-ends      slot ids by next lock end (ms)
  KEYS[2] events_key     sl:{T}:events         the resource's change stream
  KEYS[3] resource_key   sl:{T}:resource
  KEYS[4..] per slot     its hash sl:{T}:slot:<id>, its lock sl:{T}:lock:<id> and its
                         partial holds sl:{T}:held:<id>
  ARGV[1] now_ms         the service's clock: holds that ended at or before it are over
  ARGV[2..] slot ids     in KEYS order, as the caller found them due in lock-ends

Returns:
  number of slot.unlocked events written
]]
--!include places.lua
--!include slot_view.lua
--!include events.lua
local lock_ends_key, events_key, resource_key = KEYS[1], KEYS[2], KEYS[3]
local now_ms = ARGV[1]

local written = 0
for i = 2, #ARGV do
  local first = 4 + 3 * (i - 2)
  local slot_key, lock_key, held_key = KEYS[first], KEYS[first + 1], KEYS[first + 2]
  written = written + settle_lock_end(
    lock_ends_key, events_key, slot_key, lock_key, resource_key, held_key, ARGV[i], now_ms)
end
return written
