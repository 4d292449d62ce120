#!lua
--[[
expire_locks: write the slot.unlocked of every given slot whose lock ended by itself and
has no event yet. Idempotent: a slot already settled (by another pod's sweep or by a
script that changed the slot since) is skipped, so any number of pods may run it.

  KEYS[1] lock_ends_key  sl:{T}:lock-ends      locked slot ids by lock end (ms)
  KEYS[2] events_key     sl:{T}:events         the resource's change stream
  KEYS[3] resource_key   sl:{T}:resource
  KEYS[4..] per slot     its hash sl:{T}:slot:<id>, then its lock sl:{T}:lock:<id>
  ARGV[1..] slot ids     in KEYS order, as the caller found them due in lock-ends

Returns:
  number of slot.unlocked events written
]]
--!include slot_view.lua
--!include events.lua
local lock_ends_key, events_key, resource_key = KEYS[1], KEYS[2], KEYS[3]

local written = 0
for i = 1, #ARGV do
  local slot_key, lock_key = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  written = written + settle_lock_end(lock_ends_key, events_key, slot_key, lock_key, resource_key, ARGV[i])
end
return written
