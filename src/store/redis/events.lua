-- Scheduled events (engine: src/room/events.rs). What the room did about events lives in its
-- counters hash N, changed only here and atomically with the line, so each step happens once
-- whichever instance ticks and however often instances restart:
--   ev_pre, ev_first  the event whose pre-queue is open, and its first ticket
--   ev_started        the event whose pre-queue was put in line at its start, until it ends
--   ev_dropped        visitors who lost their place at events' ends (closed outside events)
-- The calling instance says which event is in force (ARGV[14..17], see begin); an event's id
-- is a decimal string and only ever compared as text.

-- Whether the room holds everyone for an event: its pre-queue, or its start before the tick
-- that puts the pre-queue in line (nobody is let in by the order before the shuffle).
function holding()
  if ev == '' then return false end
  return not ev_run or redis.call('HGET', N, 'ev_started') ~= ev
end

-- Notes a pre-queue that opened (its first ticket: the next one handed out); then, while the
-- room holds everyone, the call decides as if paused: everyone joins and waits, nobody is let
-- in or released. Returns whether it holds.
function hold()
  if ev == '' then return false end
  if not ev_run and redis.call('HGET', N, 'ev_pre') ~= ev then
    local seq = tonumber(redis.call('GET', K .. ':seq') or '0')
    redis.call('HSET', N, 'ev_pre', ev, 'ev_first', seq + 1)
  end
  local held = holding()
  if held then paused = true end
  return held
end

-- The pre-queue taken out of line: everyone waiting with a ticket from `first` on, by ticket.
-- Its visitors are in the line or a lottery's pool; a policy change at the start (which runs
-- first) may have made the line the drawn, whose scores are then the tickets. Draw numbers of
-- earlier draws may reach `first` too, hence the session's own ticket decides.
local function take_prequeue(first)
  local pre = {}
  for _, k in ipairs({ Q, F, L, W }) do
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', k, first, '+inf')) do
      local t = tonumber(redis.call('HGET', S(id), 't') or '0')
      if t >= first then
        redis.call('ZREM', k, id)
        table.insert(pre, { t, id })
      end
    end
  end
  table.sort(pre, function(a, b) return a[1] < b[1] end)
  return pre
end

-- The start (engine: events::start): the pre-queue in a drawn order, its visitors taking the
-- pre-queue's own tickets in that order, placed by the policy now in force: fifo in line
-- (ahead of everyone who comes later), a lottery straight behind those already drawn, random at
-- the front (released first, in the drawn order). The order is a Fisher-Yates shuffle whose
-- picks come from the caller's secret seed (see pick: SHA-1 over 128 bits from the instance's
-- CSPRNG, never Lua's math.random), or arrival order without `shuffle_at_start`.
-- Returns how many were put in line.
local function start(first)
  local pre = take_prequeue(first)
  local n = #pre
  local order = {}
  for i = 1, n do order[i] = pre[i][2] end
  if ev_shuffle then
    for i = n, 2, -1 do
      local j = pick(i) + 1
      order[i], order[j] = order[j], order[i]
    end
  end
  for i = 1, n do
    local t, id = pre[i][1], order[i]
    redis.call('HSET', S(id), 't', t)
    if policy == 'lottery' then redis.call('ZADD', L, redis.call('INCR', K .. ':dseq'), id)
    elseif policy == 'random' then redis.call('ZADD', F, t, id)
    else redis.call('ZADD', Q, t, id) end
  end
  return n
end

-- Everyone waiting (in line, at the front, drawn, in a draw, or away with a missed turn) loses
-- their place, counted (engine: events::drop_waiting). Every session has a timer, so the
-- timers' set lists them all. Returns how many.
local function drop_waiting()
  local n = 0
  for _, id in ipairs(redis.call('ZRANGE', D, 0, -1)) do
    local s = load(id)
    if s and (s.st == 'q' or s.st == 'm') then
      remove(id, s)
      n = n + 1
    end
  end
  redis.call('HINCRBY', N, 'ev_dropped', n)
  return n
end

-- The tick's part (engine: events::step): an event's end, then an event's start, each once.
-- Returns how many were put in line at a start and how many lost their place at an end (-1:
-- no start, no end).
function event_step()
  local started, dropped = -1, -1
  local was = redis.call('HGET', N, 'ev_started')
  if was and not (ev_run and ev == was) then
    redis.call('HDEL', N, 'ev_started')
    if drop_end then dropped = drop_waiting() end
    was = false
  end
  if ev ~= '' and ev_run then
    if was ~= ev then
      local pre = redis.call('HMGET', N, 'ev_pre', 'ev_first')
      started = 0
      if pre[1] == ev then started = start(tonumber(pre[2])) end
      redis.call('HSET', N, 'ev_started', ev)
      redis.call('HDEL', N, 'ev_pre', 'ev_first')
    end
  elseif ev == '' and redis.call('HEXISTS', N, 'ev_pre') == 1 then
    -- A pre-queue ended without its start (the operator ended the event early): in a room
    -- closed outside events its visitors lose their place, as at any event's end.
    redis.call('HDEL', N, 'ev_pre', 'ev_first')
    if drop_end then dropped = drop_waiting() end
  end
  return started, dropped
end
