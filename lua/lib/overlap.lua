-- neighbour_check: whether [start_ms, end_ms) overlaps a slot of the resource.
-- Slots of a resource never overlap, so ordered by start they are ordered by end
-- too, and only the one starting last before end_ms (its "neighbour") can reach past
-- start_ms. The caller reads that neighbour first and passes its id ('' for none) and
-- its hash key, so its end arrives through KEYS; this confirms the read still holds.
-- Needs bands.lua. Returns false (no overlap), 'STALE' (the neighbour changed: read again), or the id
-- of the overlapping slot.
local function neighbour_check(starts_key, start_ms, end_ms, except_id, neighbour_id, neighbour_key)
  local neighbour, neighbour_start = '', nil
  -- The index keeps open and shut slots in two bands (bands.lua): look in both.
  for _, offset in ipairs({0, BAND_SIZE}) do
    local high = '(' .. string.format('%d', tonumber(end_ms) + offset)
    local low = string.format('%d', offset - BAND_HALF)
    local before = redis.call('ZREVRANGEBYSCORE', starts_key, high, low, 'WITHSCORES', 'LIMIT', 0, 2)
    for i = 1, #before, 2 do
      if before[i] ~= except_id then
        local start = tonumber(before[i + 1]) - offset
        if not neighbour_start or start > neighbour_start then
          neighbour, neighbour_start = before[i], start
        end
        break
      end
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
