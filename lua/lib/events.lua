-- events: a resource's change stream (sl:{T}:events), appended by the same script that
-- makes the change, so no change goes unreported and nothing is reported that did not
-- happen. A slot event's entry holds its type and the parts of the slot's view as
-- lib/slot_view.lua gives it (data: the slot's fields as JSON, then locked_until,
-- resource_status, booking_disabled_before, timezone, held), which the service renders as
-- GET /slots/:id would; any other entry holds its type and the JSON it carries as is (data).
--
-- Kept: the last EVENTS_KEPT entries and at least the last EVENTS_KEPT_MS of them. XADD's
-- MAXLEN alone could drop events younger than an hour, and MINID alone could keep an
-- unbounded hour; so once the stream is TRIM_BATCH entries past the count, the entries
-- that are both beyond it and older than the hour go, in one XTRIM MINID. That is checked
-- on the append that takes the stream TRIM_BATCH + 1 past the count, and on every
-- TRIM_BATCH-th append after it (1,001 past, 2,001 past...): one XRANGE per TRIM_BATCH
-- appends, also while the whole stream is younger than the hour and nothing can go.
local EVENTS_KEPT, EVENTS_KEPT_MS, TRIM_BATCH = 10000, 3600000, 1000

-- `last_id`: the id XADD just gave, whose time is Redis's clock (or the stream's last
-- time, if that is later): "an hour ago" is counted from it, so no TIME call is needed.
local function trim_events(events_key, last_id)
  local surplus = redis.call('XLEN', events_key) - EVENTS_KEPT
  if surplus < TRIM_BATCH or surplus % TRIM_BATCH ~= 1 then
    return
  end
  local hour_ago_ms = tonumber(string.match(last_id, '^(%d+)')) - EVENTS_KEPT_MS
  local old = redis.call('XRANGE', events_key, '-', hour_ago_ms, 'COUNT', surplus)
  if #old > 0 then
    local ms, seq = string.match(old[#old][1], '^(%d+)-(%d+)$')
    redis.call('XTRIM', events_key, 'MINID', ms .. '-' .. (tonumber(seq) + 1))
  end
end

-- One entry: its type, its data, and any more field/value pairs after them.
local function append_event(events_key, kind, data, ...)
  trim_events(events_key, redis.call('XADD', events_key, '*', 'type', kind, 'data', data, ...))
end

-- One slot event; `view` as slot_view() or slot_view_of() return it. Each part of the view
-- is a stream field of its own, `data` the slot's JSON as the view already holds it: so
-- nothing is encoded a second time (encoding the whole view escaped every quote of that
-- JSON and built a second copy of it, a tenth of a lock's work in Redis).
-- (Redis 7.0 prints each number a script passes to redis.call with printf's %.17g, some
-- 2.5k instructions for a deadline in ms, as much as a short command: so the lock paths
-- pass the numbers they got as text, as text.)
local function slot_event(events_key, kind, view)
  append_event(events_key, kind, view[1], 'locked_until', view[2], 'resource_status', view[3],
    'booking_disabled_before', view[4], 'timezone', view[5], 'held', view[6])
end

-- The slot as GET /slots/:id shows it right after this script's change, for its event.
-- Scripts that have no now_ms of their own count holds by Redis's clock.
local function redis_now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function slot_event_now(events_key, kind, slot_key, lock_key, resource_key, held_key, now_ms)
  local view = slot_view(slot_key, lock_key, resource_key, held_key, now_ms or redis_now_ms())
  slot_event(events_key, kind, view)
end

-- The next instant something holding the slot ends by itself: its whole-slot lock
-- (Redis drops it at lock_until) or the first of its partial holds (they stop counting at
-- their until_ms); 0 when nothing holds it.
local function first_end_ms(lock_end_ms, hold_end_ms)
  if lock_end_ms > 0 and (hold_end_ms == 0 or lock_end_ms < hold_end_ms) then
    return lock_end_ms
  end
  return hold_end_ms
end

local function next_lock_end_ms(lock_key, held_key, now_ms)
  local lock_end_ms, _, hold_end_ms = lock_and_holds(lock_key, held_key, now_ms)
  return first_end_ms(lock_end_ms, hold_end_ms)
end

-- Keep the slot's next lock end where the expiry sweep finds it (sl:{T}:lock-ends); every
-- script that takes, moves, resizes or ends a lock or hold calls it after its change.
-- track_lock_end_at: when the script already knows that end (0: nothing holds the slot), as
-- a number or as the decimal text it came in (see slot_event on printing numbers).
local function track_lock_end_at(lock_ends_key, slot_id, until_ms)
  if tonumber(until_ms) > 0 then
    redis.call('ZADD', lock_ends_key, until_ms, slot_id)
  else
    redis.call('ZREM', lock_ends_key, slot_id)
  end
end

local function track_lock_end(lock_ends_key, slot_id, lock_key, held_key, now_ms)
  track_lock_end_at(lock_ends_key, slot_id, next_lock_end_ms(lock_key, held_key, now_ms))
end

-- track_lock_end, then slot_event_now, from one read of the lock and the holds (each of
-- them reads both): for a script whose change may have ended a lock or a hold, such as a
-- booking that took the place one kept. `slot`: the slot's fields as slot_fields gives
-- them, kept current by the script.
local function track_lock_end_and_report(
    lock_ends_key, events_key, kind, slot, lock_key, resource_key, held_key, now_ms)
  local lock_end_ms, held, hold_end_ms = lock_and_holds(lock_key, held_key, now_ms)
  track_lock_end_at(lock_ends_key, slot.id, first_end_ms(lock_end_ms, hold_end_ms))
  slot_event(events_key, kind, slot_view_of(slot, lock_end_ms, resource_key, held))
end

-- The slot.unlocked of a lock or hold that ended by itself, if nobody wrote it yet: the
-- sweep calls this for due slots, and the scripts that change a slot's locks or holds call
-- it first (before they drop ended holds), so that event comes before theirs. Exactly
-- once: the slot's entry in lock-ends moves on to its next end in the same step that
-- writes the event. A whole-slot lock that Redis still has (its clock a little behind the
-- service's) is left for the next round. So is every slot whose whole-slot lock Redis
-- still has: no partial hold runs beside such a lock, and the script that set it made its
-- lock_until the slot's next lock end, so nothing before it can be due. Lock and unlock,
-- which read the lock anyway, call this only when there is none.
local function settle_lock_end(lock_ends_key, events_key, slot_key, lock_key, resource_key, held_key, slot_id, now_ms)
  local due = redis.call('ZSCORE', lock_ends_key, slot_id)
  if not due or tonumber(due) > tonumber(now_ms) then
    return 0
  end
  local lock_end_ms = redis.call('PEXPIRETIME', lock_key)
  if lock_end_ms > 0 and lock_end_ms <= tonumber(due) then
    return 0
  end
  if redis.call('EXISTS', slot_key) == 0 then
    redis.call('ZREM', lock_ends_key, slot_id)
    return 0
  end
  redis.call('ZREMRANGEBYSCORE', held_key, '-inf', now_ms)
  slot_event_now(events_key, 'slot.unlocked', slot_key, lock_key, resource_key, held_key, now_ms)
  track_lock_end(lock_ends_key, slot_id, lock_key, held_key, now_ms)
  return 1
end
