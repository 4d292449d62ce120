-- slot_view: what a response needs to show one slot, read inside the script
-- that changed it so the answer costs no second round trip.
-- Returns {slot fields (HGETALL), locked_until_ms (0 if unlocked), resource status, booking_disabled_before}.
local function slot_view(slot_key, lock_key, resource_key)
  local locked_until_ms = redis.call('PEXPIRETIME', lock_key)
  if locked_until_ms < 0 then
    locked_until_ms = 0
  end
  local resource = redis.call('HMGET', resource_key, 'status', 'booking_disabled_before')
  return {redis.call('HGETALL', slot_key), locked_until_ms, resource[1] or '', resource[2] or '0'}
end
