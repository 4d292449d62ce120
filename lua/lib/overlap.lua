-- neighbour_check: whether [start_ms, end_ms) overlaps a slot of the resource.
-- Slots of a resource never overlap, so ordered by start they are ordered by end
-- too, and only the one starting last before end_ms (its "neighbour") can reach past
-- start_ms. The caller reads that neighbour first and passes its id ('' for none) and
-- its hash key, so its end arrives through KEYS; this confirms the read still holds.
-- Returns false (no overlap), 'STALE' (the neighbour changed: read again), or the id
-- of the overlapping slot.
local function neighbour_check(starts_key, start_ms, end_ms, except_id, neighbour_id, neighbour_key)
  local neighbour = ''
  local before = redis.call('ZREVRANGEBYSCORE', starts_key, '(' .. end_ms, '-inf', 'LIMIT', 0, 2)
  for _, slot_id in ipairs(before) do
    if slot_id ~= except_id then
      neighbour = slot_id
      break
    end
  end
  if neighbour ~= neighbour_id then
    return 'STALE'
  end
  if neighbour ~= '' and tonumber(redis.call('HGET', neighbour_key, 'end_ms')) > tonumber(start_ms) then
    return neighbour
  end
  return false
end
