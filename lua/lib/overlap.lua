-- overlapping_slot: the id of a slot of this resource that overlaps [start_ms, end_ms),
-- ignoring except_id, or false. Relies on the invariant these scripts keep: a
-- resource's slots never overlap, so ordered by start they are ordered by end too,
-- and only the last slot starting before end_ms can reach past start_ms.
local function overlapping_slot(starts_key, ends_key, start_ms, end_ms, except_id)
  local candidates = redis.call('ZREVRANGEBYSCORE', starts_key, '(' .. end_ms, '-inf', 'LIMIT', 0, 2)
  for _, slot_id in ipairs(candidates) do
    if slot_id ~= except_id then
      if tonumber(redis.call('ZSCORE', ends_key, slot_id)) > tonumber(start_ms) then
        return slot_id
      end
      return false
    end
  end
  return false
end
