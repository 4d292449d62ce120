-- bands: one sorted set answers a filter with two values by keeping each value in a
-- band of scores of its own. A member of the first band ("in": an open slot, an active
-- booking, a draft resource) is scored by its sort key itself (ms since the epoch); one
-- of the second band ("out": a shut slot, a cancelled booking, a published resource)
-- by the key plus 2^50. Every instant from year 1 to 9999 lies within 2^49 ms of the
-- epoch, so the bands never meet, and every score stays an exact integer in a double.
local BAND_SIZE = 1125899906842624   -- 2^50: where the second band starts (its offset)
local BAND_HALF = 562949953421312    -- 2^49: every sort key lies in (-2^49, 2^49)

-- The score of a sort key in the first band (is_in) or the second, as exact text:
-- redis.call would print a Lua number with 14 digits and round it.
local function band_score(sort_ms, is_in)
  local score = tonumber(sort_ms)
  if not is_in then
    score = score + BAND_SIZE
  end
  return string.format('%d', score)
end

-- The sort key of a score from either band.
local function sort_key_of(score)
  local value = tonumber(score)
  if value >= BAND_HALF then
    return value - BAND_SIZE
  end
  return value
end

-- Whether a score lies in the first band.
local function in_first_band(score)
  return tonumber(score) < BAND_HALF
end
