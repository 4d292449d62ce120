-- lock_deadlines: `sl:{T}:locks`, the slots of a resource whose lock may still be live,
-- by deadline; lists ask blocked.lua about each one whose deadline is ahead.

-- How long a lock deadline stays in `sl:{T}:locks` after it passed: a margin for pods
-- whose clocks run behind the one that drops it.
local LOCK_DEADLINE_MARGIN_MS = 60000

-- note_lock: the resource's lock deadlines learn that the slot may be locked or held
-- until until_ms (GT: several holds of one slot keep the latest deadline); deadlines long
-- past are dropped, so the set holds about the live locks and holds.
local function note_lock(locks_key, slot_id, until_ms, now_ms)
  redis.call('ZADD', locks_key, 'GT', until_ms, slot_id)
  local stale_ms = string.format('%d', tonumber(now_ms) - LOCK_DEADLINE_MARGIN_MS)
  redis.call('ZREMRANGEBYSCORE', locks_key, '-inf', '(' .. stale_ms)
end
