-- events: a resource's change stream (sl:{T}:events), appended by the same script that
-- makes the change, so no change goes unreported and nothing is reported that did not
-- happen. An entry is {type, data}: data is the slot's view as lib/slot_view.lua gives it
-- (the service renders it as GET /slots/:id would), or the JSON the event carries as is.
--
-- Kept: the last EVENTS_KEPT entries and at least the last EVENTS_KEPT_MS of them. XADD's
-- MAXLEN alone could drop events younger than an hour, and MINID alone could keep an
-- unbounded hour; so once the stream is TRIM_BATCH entries past the count, the entries
-- that are both beyond it and older than the hour go, in one XTRIM MINID (amortised: one
-- XRANGE of at most TRIM_BATCH ids per TRIM_BATCH appends).
local EVENTS_KEPT, EVENTS_KEPT_MS, TRIM_BATCH = 10000, 3600000, 1000

local function trim_events(events_key)
  local surplus = redis.call('XLEN', events_key) - EVENTS_KEPT
  if surplus < TRIM_BATCH then
    return
  end
  local time = redis.call('TIME')
  local hour_ago_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - EVENTS_KEPT_MS
  local old = redis.call('XRANGE', events_key, '-', hour_ago_ms, 'COUNT', surplus)
  if #old > 0 then
    local ms, seq = string.match(old[#old][1], '^(%d+)-(%d+)$')
    redis.call('XTRIM', events_key, 'MINID', ms .. '-' .. (tonumber(seq) + 1))
  end
end

local function append_event(events_key, kind, data)
  redis.call('XADD', events_key, '*', 'type', kind, 'data', data)
  trim_events(events_key)
end

-- One slot event; `view` as slot_view() or slot_view_of() return it.
local function slot_event(events_key, kind, view)
  append_event(events_key, kind, cjson.encode(view))
end

-- Keep the slot's lock end where the expiry sweep finds it: until_ms > 0 while a lock
-- stands, 0 once it is gone by a change (which wrote its own event).
local function track_lock_end(lock_ends_key, slot_id, until_ms)
  if tonumber(until_ms) > 0 then
    redis.call('ZADD', lock_ends_key, until_ms, slot_id)
  else
    redis.call('ZREM', lock_ends_key, slot_id)
  end
end

-- The slot.unlocked of a lock that ended by itself (Redis dropped it at lock_until), if
-- nobody wrote it yet: the sweep calls this for due slots, and the scripts that change a
-- slot's lock call it first, so that event comes before theirs. Exactly once: the entry
-- leaves lock-ends in the same step that writes the event.
local function settle_lock_end(lock_ends_key, events_key, slot_key, lock_key, resource_key, slot_id)
  if redis.call('ZSCORE', lock_ends_key, slot_id) and redis.call('EXISTS', lock_key) == 0 then
    redis.call('ZREM', lock_ends_key, slot_id)
    if redis.call('EXISTS', slot_key) == 1 then
      slot_event(events_key, 'slot.unlocked', slot_view(slot_key, lock_key, resource_key))
      return 1
    end
  end
  return 0
end
