-- The operations by name (see room.lua for the calling convention).

-- One call: the operation ARGV[1] names, on the room KEYS[1].
local function run(keys, args)
  begin(keys, args)
  if op == 'decide' then return decide(arg(1), arg(2), arg(3) == '1', arg(4))
  elseif op == 'status' then return status(arg(1), arg(2) == '1')
  elseif op == 'leave' then return leave(arg(1), 'leave')
  elseif op == 'revoke' then return leave(arg(1), 'revoke')
  elseif op == 'reset' then return reset()
  elseif op == 'tick' then seed = arg(2); return tick(arg(1))
  elseif op == 'draw' then
    if redis.call('GET', K .. ':lease:fence') ~= arg(1) then return 0 end
    if holding() then return 0 end
    seed = arg(2)
    return draw_step()
  elseif op == 'lease' then return lease(arg(1), tonumber(arg(2)))
  elseif op == 'figures' then return figures(arg(1))
  elseif op == 'seen' then return seen({ unpack(A, 18) })
  elseif op == 'adopt' then return adopt({ unpack(A, 18) })
  elseif op == 'file' then
    -- An instance offers its file's settings: arguments instance, version (the file's
    -- modification time, ms), JSON. The newest file is kept; an equal version replaces.
    local held = tonumber(redis.call('HGET', K .. ':c', 'v') or '-1')
    local v = tonumber(arg(2))
    if v < held then return { 0 } end
    redis.call('HSET', K .. ':c', 'json', arg(3), 'from', arg(1), 'v', arg(2))
    return { 1 }
  elseif op == 'overrides' then
    redis.call('SET', K .. ':o', arg(1))
    return 'ok'
  end
  return redis.error_reply('anteroom: unknown operation ' .. tostring(op))
end
