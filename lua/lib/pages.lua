-- pages: one page of a list, read from sorted sets without reading what lies before it.
-- A "source" is a sorted sequence of elements {sort_key, member}, ordered by sort key,
-- then member (as Redis orders equal scores). It knows its `count` and gives
-- `at(rank, n)`: up to n elements from rank `rank` (0-based). A band's range answers
-- both with ZCOUNT and ZRANGE by rank (O(log n + n)); merging two sources finds where
-- the page starts by bisection over ranks (O(log^2 n)); taking a few members out of a
-- source shifts ranks past each of them. So a page costs its own length and log n,
-- never what lies before it. Needs bands.lua.

local function precedes(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end

local EMPTY = {count = 0, at = function() return {} end}

-- The members of `key` whose sort key k satisfies low_ms <= k < high_ms, in the first
-- band (is_in) or the second. nil bounds are open.
local function band_source(key, is_in, low_ms, high_ms)
  local offset = is_in and 0 or BAND_SIZE
  local low = string.format('%d', math.max(low_ms or -BAND_HALF, -BAND_HALF) + offset)
  local high = string.format('%d', math.min(high_ms or BAND_HALF, BAND_HALF) + offset)
  if tonumber(low) >= tonumber(high) then
    return EMPTY
  end
  local first = redis.call('ZCOUNT', key, '-inf', '(' .. low)
  local count = redis.call('ZCOUNT', key, low, '(' .. high)
  local source = {count = count, key = key, first = first}
  function source.at(rank, n)
    local out = {}
    if n <= 0 or rank >= count then
      return out
    end
    local last = math.min(count, rank + n) - 1
    local flat = redis.call('ZRANGE', key, first + rank, first + last, 'WITHSCORES')
    for i = 1, #flat, 2 do
      out[#out + 1] = {tonumber(flat[i + 1]) - offset, flat[i]}
    end
    return out
  end
  return source
end

-- A sorted Lua array of elements as a source.
local function list_source(items)
  return {count = #items, at = function(rank, n)
    local out = {}
    for i = rank + 1, math.min(#items, rank + n) do
      out[#out + 1] = items[i]
    end
    return out
  end}
end

-- A band source without `excluded` (a sorted array of elements, each one in the source).
local function minus_source(source, excluded)
  if #excluded == 0 then
    return source
  end
  local ranks, skip = {}, {}
  for i, item in ipairs(excluded) do
    ranks[i] = redis.call('ZRANK', source.key, item[2]) - source.first
    skip[item[2]] = true
  end
  table.sort(ranks)
  return {count = source.count - #excluded, at = function(rank, n)
    local at, passed = rank, 0
    for _, excluded_rank in ipairs(ranks) do
      if excluded_rank > at then
        break
      end
      at, passed = at + 1, passed + 1
    end
    local out = {}
    for _, item in ipairs(source.at(at, n + #ranks - passed)) do
      if not skip[item[2]] and #out < n then
        out[#out + 1] = item
      end
    end
    return out
  end}
end

-- Two sources interleaved in order.
local function merged_source(a, b)
  if a.count == 0 then
    return b
  elseif b.count == 0 then
    return a
  end
  local function one(source, rank)
    return source.at(rank, 1)[1]
  end
  return {count = a.count + b.count, at = function(rank, n)
    -- from_a: how many of the first `rank` elements come from a (bisection).
    local low, high = math.max(0, rank - b.count), math.min(rank, a.count)
    while low < high do
      local from_a = math.floor((low + high) / 2)
      if precedes(one(a, from_a), one(b, rank - from_a - 1)) then
        low = from_a + 1
      else
        high = from_a
      end
    end
    local from_a, from_b = a.at(low, n), b.at(rank - low, n)
    local out, i, j = {}, 1, 1
    while #out < n and (from_a[i] or from_b[j]) do
      if from_b[j] == nil or (from_a[i] and precedes(from_a[i], from_b[j])) then
        out[#out + 1], i = from_a[i], i + 1
      else
        out[#out + 1], j = from_b[j], j + 1
      end
    end
    return out
  end}
end

-- `a`, then `b` (every element of a precedes every element of b).
local function chained_source(a, b)
  return {count = a.count + b.count, at = function(rank, n)
    local out = a.at(rank, n)
    for _, item in ipairs(b.at(math.max(0, rank - a.count), n - #out)) do
      out[#out + 1] = item
    end
    return out
  end}
end

-- Both bands of `key` within one sort-key range, in order.
local function both_bands(key, low_ms, high_ms)
  return merged_source(band_source(key, true, low_ms, high_ms), band_source(key, false, low_ms, high_ms))
end
