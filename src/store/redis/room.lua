-- One room of anteroom's shared store, run inside Redis so that every step is atomic across
-- any number of instances. The same rules as src/room/ (decide.rs, tick/): read those first.
--
-- KEYS[1]: the room's key base, "{prefix:room}" (one hash tag: a cluster keeps a room on one
-- slot). ARGV[1]: the operation; ARGV[2..17]: the room's settings (ARGV[14..17]: the scheduled
-- event in force); ARGV[18..]: the operation's. Times are Redis's clock (TIME), in milliseconds,
-- so instances never disagree about "now".
--
-- The code is three files run as one: this one (the line), events.lua (scheduled events) and
-- run.lua (the operations by name).

-- Nothing is kept between calls: `begin` sets every value below from the call's key and
-- arguments, so the same code runs as a script (EVAL) or a library function (FCALL), whose
-- helpers are then defined once, at load.
local K, A, op                   -- the room's key base, the call's arguments, the operation
local cap, rate                  -- active_users, admit_per_minute (-1: none)
local ttl, abandon, window, maxs -- session_ttl, abandon_after, release_window, max_session ms
local paused, reject             -- booleans
local batch                      -- most sessions one tick looks at or releases
local joins                      -- max_joins_per_prefix_per_minute, -1: none
local policy, draw_every         -- queue: fifo | random | lottery; lottery: ms between draws
local now                        -- Redis's clock, ms
-- The scheduled event in force, as the calling instance's clock and the operator's moves say:
-- its id ('' : none), whether it runs (else: its pre-queue), whether its pre-queue is shuffled
-- at the start, and whether its end drops those waiting (a room closed outside events).
local ev, ev_run, ev_shuffle, drop_end
-- Scheduled events' steps, defined in events.lua (after the helpers they use).
local hold, holding, event_step
local N, Q, F, L, W, D, B, R     -- the room's keys (see begin)
-- Random picks: the caller's secret seed and a counter (see pick).
local seed, picks = '', 0
local function arg(i) return A[17 + i] end

local function begin(keys, args)
  K, A, op = keys[1], args, args[1]
  cap = tonumber(args[2])
  rate = tonumber(args[3])
  ttl = tonumber(args[4])
  abandon = tonumber(args[5])
  window = tonumber(args[6])
  maxs = tonumber(args[7])
  paused = args[8] == '1'
  reject = args[9] == '1'
  batch = tonumber(args[10])
  joins = tonumber(args[11])
  policy = args[12]
  draw_every = tonumber(args[13])
  ev = args[14]
  ev_run = args[15] == '1'
  ev_shuffle = args[16] == '1'
  drop_end = args[17] == '1'
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  N = K .. ':n'    -- counters: active, released, joined, adm_i, adm_r, rel_total, ...
  Q = K .. ':q'    -- the line (a lottery's pool): session -> ticket
  F = K .. ':f'    -- the front (back from a missed turn): session -> ticket
  L = K .. ':l'    -- the drawn of a lottery, released before the line: session -> draw number
  W = K .. ':w'    -- a draw under way, taken out of the line at the draw: session -> ticket
  D = K .. ':d'    -- timers: session -> when to look at it next
  B = K .. ':b'    -- the rate budget: tok, last, rate
  R = K .. ':r'    -- releases of the last minute: "ms:count" -> ms
  seed, picks = '', 0
end

local function S(id) return K .. ':s:' .. id end

local function count(f) return tonumber(redis.call('HGET', N, f) or '0') end
local function card(k) return redis.call('ZCARD', k) end
local function waiting() return card(Q) + card(F) + card(L) + card(W) end

local function tokens()
  if rate < 0 then return math.huge end
  local tok = redis.call('HGET', B, 'tok')
  if not tok then return rate end
  return tonumber(tok)
end

local function take_token()
  if rate >= 0 then redis.call('HSET', B, 'tok', tokens() - 1) end
end

-- The budget refilled at the tick only, as in the engine: a minute's burst at most; a room that
-- gets a rate after having none starts full.
local function refill()
  if rate < 0 then redis.call('HDEL', B, 'rate'); return end
  local had = redis.call('HGET', B, 'rate')
  local last = tonumber(redis.call('HGET', B, 'last') or now)
  local tok = tokens()
  if not had then tok = rate end
  tok = math.min(tok + math.max(0, now - last) / 60000 * rate, rate)
  redis.call('HSET', B, 'tok', tok, 'last', now, 'rate', rate)
end

local function has_room()
  local slot = cap < 0 or count('active') + count('released') < cap
  return slot and tokens() >= 1
end

-- When a session must be looked at next: the earliest of its deadlines (engine: tick::deadline).
local function deadline(s)
  if s.st == 'q' or s.st == 'm' then return s.seen + abandon, 'abandon' end
  if s.st == 'r' then return s.since + window, 'no_show' end
  local idle = s.seen + ttl
  if maxs >= 0 and s.since + maxs <= idle then return s.since + maxs, 'max_session' end
  return idle, 'idle'
end

local function load(id)
  local v = redis.call('HMGET', S(id), 't', 'st', 'seen', 'since', 'ret', 'ns', 'np', 'rb')
  if not v[1] then return nil end
  return { t = tonumber(v[1]), st = v[2], seen = tonumber(v[3]), since = tonumber(v[4]),
           ret = v[5] == '1', ns = v[6] == '1', np = tonumber(v[7]), rb = tonumber(v[8]) }
end

local function save(id, s)
  redis.call('HSET', S(id), 't', s.t, 'st', s.st, 'seen', s.seen, 'since', s.since,
    'ret', s.ret and '1' or '0', 'ns', s.ns and '1' or '0', 'np', s.np, 'rb', s.rb)
  redis.call('ZADD', D, (deadline(s)), id)
end

local function remove(id, s)
  redis.call('DEL', S(id))
  redis.call('ZREM', D, id)
  redis.call('ZREM', Q, id)
  redis.call('ZREM', F, id)
  redis.call('ZREM', L, id)
  redis.call('ZREM', W, id)
  if s.st == 'a' then redis.call('HINCRBY', N, 'active', -1) end
  if s.st == 'r' then redis.call('HINCRBY', N, 'released', -1) end
end

-- The sizes of the front, the drawn, the draw under way and the line, read once per answer.
local function sizes()
  return { f = card(F), l = card(L), w = card(W), q = card(Q) }
end

-- A place in line: 1 + those ahead. Releases take the front first, then the drawn of a lottery,
-- then a draw under way, then the line by policy; only fifo gives the line stable places (a
-- random line has none, a lottery's pool none before its draw). `z`: the sets' sizes (an empty
-- set is not asked).
local function position(id, s, z)
  if s.st ~= 'q' then return -1 end
  z = z or sizes()
  local r = z.f > 0 and redis.call('ZRANK', F, id)
  if r then return r + 1 end
  r = z.l > 0 and redis.call('ZRANK', L, id)
  if r then return z.f + r + 1 end
  if policy ~= 'fifo' then return -1 end
  r = redis.call('ZRANK', Q, id)
  if r then return z.f + z.l + z.w + r + 1 end
  return -1
end

-- Random picks for a random line and a lottery's draws: SHA-1 over the caller's secret seed (from
-- the instance's CSPRNG, fresh per call) and a counter, so nobody outside can predict a pick.
local function pick(n)
  picks = picks + 1
  local x = tonumber(string.sub(redis.sha1hex(seed .. ':' .. picks), 1, 12), 16)
  return math.floor(x / 281474976710656 * n)
end

-- Takes one session uniformly at random out of the sorted set `k` (O(log n)).
local function take_random(k)
  local n = card(k)
  if n == 0 then return nil end
  local r = pick(n)
  local id = redis.call('ZRANGE', k, r, r)[1]
  redis.call('ZREM', k, id)
  return id
end

-- Moves up to `batch` of a draw under way behind the drawn, each picked uniformly among those
-- left: a shuffle of the whole draw, done in bounded steps. Returns how many are left.
local function draw_step()
  for _ = 1, math.min(batch, card(W)) do
    local id = take_random(W)
    redis.call('ZADD', L, redis.call('INCR', K .. ':dseq'), id)
  end
  return card(W)
end

-- A lottery's draw when due (engine: LotteryQueue::draw_if_due): the pool becomes the draw under
-- way (one RENAME, whatever its size) and the next draw is `draw_every` later. A draw due while
-- the last is still under way waits for it.
local function draw_if_due()
  if policy ~= 'lottery' then return end
  local at = tonumber(redis.call('HGET', N, 'draw_at') or '0')
  local soonest = now + draw_every
  if at > now then
    redis.call('HSET', N, 'draw_at', math.min(at, soonest))
    return
  end
  if card(W) > 0 then return end
  redis.call('HSET', N, 'draw_at', soonest)
  if card(Q) > 0 then redis.call('RENAME', Q, W) end
end

-- The room's policy changed (a reload or an override): nobody queued is lost. A fifo line
-- becoming a lottery keeps its order as if already drawn (one RENAME, when nobody is drawn yet);
-- otherwise the line becomes the pool of the next draw. The drawn keep their order whatever the
-- policy, and go first.
local function switch()
  local was = redis.call('HGET', N, 'pol') or 'fifo'
  if was == policy then return end
  redis.call('HSET', N, 'pol', policy)
  if policy ~= 'lottery' then return end
  -- Instances that disagree for a moment (a rolling reload) never postpone a draw.
  local at = tonumber(redis.call('HGET', N, 'draw_at') or '0')
  if at <= now or at > now + draw_every then redis.call('HSET', N, 'draw_at', now + draw_every) end
  if was == 'fifo' and card(L) == 0 and card(W) == 0 and card(Q) > 0 then
    redis.call('RENAME', Q, L)
    redis.call('SET', K .. ':dseq', redis.call('GET', K .. ':seq') or '0')
  end
end

-- The next session a release goes to, by the order `position` counts.
local function next_up()
  for _, k in ipairs({ F, L }) do
    local id = redis.call('ZRANGE', k, 0, 0)[1]
    if id then redis.call('ZREM', k, id); return id end
  end
  if card(W) > 0 then return take_random(W) end
  if policy == 'fifo' then
    local id = redis.call('ZRANGE', Q, 0, 0)[1]
    if id then redis.call('ZREM', Q, id) end
    return id
  elseif policy == 'random' then return take_random(Q) end
  return nil
end

-- Releases over the last minute, and when the room first released anyone (0: never).
local function recent_count()
  local n = 0
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', R, now - 60000, '+inf')) do
    n = n + tonumber(string.match(m, ':(%d+)$'))
  end
  return n
end

local function recent()
  return recent_count(), count('first_rel')
end

-- What every answer carries: kind, session, ticket, joined, how, state, position, depth,
-- released before joining, releases so far, seen, since, active, released, now, releases over
-- the last minute, first release, wait, then for a lottery: the next draw (0: none), those
-- drawn or at the front, those in the pool or a draw under way; last, 1 while the room holds
-- everyone for a scheduled event (its pre-queue: no place is shown).
local function answer(kind, id, s, joined, how, wait)
  local z = sizes()
  local pos, st, t, seen, since, rb = -1, '', 0, 0, 0, 0
  if s then pos, st, t, seen, since, rb = position(id, s, z), s.st, s.t, s.seen, s.since, s.rb end
  local n = recent_count()
  local c = redis.call('HMGET', N, 'rel_total', 'active', 'released', 'first_rel', 'draw_at')
  local function num(i) return tonumber(c[i] or '0') end
  local draw_at = policy == 'lottery' and num(5) or 0
  local placed, unplaced = z.f + z.l, z.q + z.w
  return { kind, id or '', t, joined and 1 or 0, how or '', st, pos, placed + unplaced, rb,
           num(1), seen, since, num(2), num(3), now, n, num(4), wait or 0, draw_at, placed,
           unplaced, holding() and 1 or 0 }
end

-- The release rate (per second) the estimate uses (engine: estimate::rate_of).
local function release_rate()
  local n, first = recent()
  local r
  if first > 0 and n > 0 then
    r = n * 1000 / math.min(math.max(now - first, 1000), 60000)
  else
    local by_cap = cap >= 0 and cap / math.max(ttl / 1000, 1) or nil
    local by_budget = rate >= 0 and rate / 60 or nil
    r = (by_cap and by_budget and math.min(by_cap, by_budget)) or by_cap or by_budget or 1
  end
  if rate >= 0 then r = math.min(r, rate / 60) end
  return r
end

-- The poll floor of a queued session just answered (engine: set_poll_floor with the
-- least poll_after its view can carry): half of it, in ms.
local function floor_ms(id, s)
  local base = 5
  if not paused and not reject then
    local pos = position(id, s)
    if pos < 1 then pos = waiting() end
    local r = release_rate()
    if r > 0 then base = math.min(math.max(math.ceil(pos / r) / 10, 2), 30) end
  end
  local secs = math.max(2, math.floor(base * 0.8 + 0.5))
  secs = math.min(secs, math.max(math.floor(window / 3000), 2))
  return secs * 500
end

-- A queued session polling before its floor: present, nothing computed (engine:
-- poll_too_soon). Returns the answer, or nil to go on.
local function too_soon(id, s)
  if s.st ~= 'q' or now >= s.np then return nil end
  s.seen = now; s.ret = true
  save(id, s)
  return answer('too_soon', id, s, false, nil, s.np - now)
end

-- A new session from client prefix `p` past its join budget: ms until it has a join, else nil
-- after spending one (engine: JoinBudget::take).
local function over_budget(p)
  if joins < 0 or reject or p == '' then return nil end
  local key = K .. ':j:' .. p
  local per = math.max(joins, 1)
  local tok = tonumber(redis.call('HGET', key, 'tok') or per)
  local last = tonumber(redis.call('HGET', key, 'last') or now)
  tok = math.min(tok + math.max(0, now - last) / 60000 * per, per)
  local wait = nil
  if tok >= 1 then tok = tok - 1 else wait = math.ceil((1 - tok) / per * 60000) end
  redis.call('HSET', key, 'tok', tok, 'last', now)
  redis.call('PEXPIRE', key, 60000)
  return wait
end

-- A known session makes a request or polls: it is present (engine: decide::came_back).
local function came_back(id, s)
  if s.st == 'q' then s.seen = now; s.ret = true
  elseif s.st == 'm' then
    s.st = 'q'; s.seen = now; s.ret = true
    redis.call('ZADD', F, s.t, id)
  elseif s.st == 'r' then s.seen = now end
end

-- A new visitor: admitted at once while there is room and nobody waits, else in line. One with
-- a valid token the room no longer knows is told its place expired, never put at the back.
local function join(id, had_token)
  local at_once = not paused and waiting() == 0 and has_room()
  if had_token and not at_once then return answer('expired') end
  local ticket = redis.call('INCR', K .. ':seq')
  redis.call('HINCRBY', N, 'joined', 1)
  local s = { t = ticket, st = 'q', seen = now, since = now, ret = false, ns = false, np = 0,
              rb = count('rel_total') }
  if at_once then
    s.st = 'a'
    redis.call('HINCRBY', N, 'active', 1)
    redis.call('HINCRBY', N, 'adm_i', 1)
    take_token()
    save(id, s)
    return answer('admit', id, s, true, 'immediate')
  end
  redis.call('ZADD', Q, ticket, id)
  save(id, s)
  return answer('wait', id, s, true)
end

-- One request (engine: arrive, then decide). Arguments: the token's session or ''; a fresh id
-- for a new session; '1' when the request is a poll (not a page view); the client's prefix for
-- the join budget ('' : not budgeted).
local function decide(id, fresh, poll, p)
  switch()
  hold()
  if id ~= '' then
    local s = load(id)
    if s and poll then
      local soon = too_soon(id, s)
      if soon then return soon end
    end
    if s then
      came_back(id, s)
      if s.st == 'a' then
        s.seen = now; save(id, s)
        return answer('admit', id, s, false)
      elseif s.st == 'r' then
        s.st = 'a'; s.seen = now; s.since = now
        redis.call('HINCRBY', N, 'released', -1)
        redis.call('HINCRBY', N, 'active', 1)
        redis.call('HINCRBY', N, 'adm_r', 1)
        save(id, s)
        return answer('admit', id, s, false, 'released')
      end
      redis.call('HINCRBY', N, 'dup', 1)
      if poll and s.st == 'q' then s.np = now + floor_ms(id, s) end
      save(id, s)
      return answer('wait', id, s, false)
    end
  end
  local wait = over_budget(p)
  if wait then return answer('over_budget', nil, nil, false, nil, wait) end
  if reject then return answer('closed') end
  return join(fresh, id ~= '')
end

-- The standing of a known session (a status poll): present, its answer; unknown: 'unknown'.
-- `push`: the event stream (engine: decide::standing), no poll floor checked or set.
local function status(id, push)
  switch()
  hold()
  local s = load(id)
  if not s then return answer('unknown') end
  if not push then
    local soon = too_soon(id, s)
    if soon then return soon end
  end
  came_back(id, s)
  if s.st == 'q' and not push then s.np = now + floor_ms(id, s) end
  save(id, s)
  return answer('standing', id, s, false)
end

local function leave(id, why)
  local s = load(id)
  if not s then return { 'none' } end
  remove(id, s)
  if s.st == 'q' or s.st == 'm' then
    if why == 'leave' then redis.call('HINCRBY', N, 'left', 1) end
    return { 'place' }
  end
  return { 'slot' }
end

-- The operator empties the line (engine: decide::reset): everyone waiting (in line, at the
-- front, drawn or in a draw, or away with a missed turn) loses their place; released and admitted
-- sessions keep their slots. Missed sessions sit in no line, so every session's timer is looked
-- at: one step over the room's sessions. Returns how many lost their place.
local function reset()
  local dropped = 0
  for _, id in ipairs(redis.call('ZRANGE', D, 0, -1)) do
    local s = load(id)
    if s and (s.st == 'q' or s.st == 'm') then
      remove(id, s)
      dropped = dropped + 1
    end
  end
  -- A session whose timer was lost is still in a line: it goes too.
  for _, k in ipairs({ Q, F, L, W }) do
    for _, id in ipairs(redis.call('ZRANGE', k, 0, -1)) do
      local s = load(id)
      if s then remove(id, s) else redis.call('ZREM', k, id) end
      dropped = dropped + 1
    end
  end
  return { dropped }
end

-- The tick (engine: tick::expire then release), by the lease holder only: its first argument is
-- its fencing value, the second a fresh random seed, refused when another instance took the lease since. Looks at `batch` due
-- sessions at most and releases `batch` at most, so no call runs long. A lottery draws when due,
-- moving `batch` at most of the draw; the answer says how many are left to draw (op 'draw').
local function tick(fence)
  if redis.call('GET', K .. ':lease:fence') ~= fence then return { 'fenced' } end
  switch()
  -- A scheduled event's start or end, once; then, while the room holds everyone for an event
  -- (its pre-queue, as paused), nobody is drawn or released.
  local started, dropped = event_step()
  local drawing = 0
  if not hold() then
    draw_if_due()
    drawing = draw_step()
  end
  local ended = {}
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', D, '-inf', now, 'LIMIT', 0, batch)) do
    local s = load(id)
    if not s then redis.call('ZREM', D, id)
    else
      local due, why = deadline(s)
      if due > now then redis.call('ZADD', D, due, id)
      elseif why == 'no_show' and not s.ns and s.seen + abandon > now then
        s.st = 'm'; s.ns = true
        redis.call('HINCRBY', N, 'released', -1)
        save(id, s)
        table.insert(ended, 'no_show')
      else
        remove(id, s)
        if why == 'abandon' then redis.call('HINCRBY', N, 'abandoned', 1) end
        table.insert(ended, why)
      end
    end
  end
  refill()
  local released, looked = 0, 0
  while not paused and looked < batch and has_room() do
    looked = looked + 1
    local id = next_up()
    if not id then break end
    local s = load(id)
    if s and not s.ret then
      s.st = 'm'; save(id, s)        -- never came back: passed over, its turn missed
    elseif s then
      s.st = 'r'; s.since = now; save(id, s)
      redis.call('HINCRBY', N, 'released', 1)
      take_token()
      released = released + 1
    end
  end
  if released > 0 then
    redis.call('HSETNX', N, 'first_rel', now)
    redis.call('HINCRBY', N, 'rel_total', released)
    redis.call('ZADD', R, now, now .. ':' .. released)
  end
  redis.call('ZREMRANGEBYSCORE', R, '-inf', now - 60000)
  return { 'ticked', released, count('active'), count('released'), waiting(), drawing,
           started, dropped, unpack(ended) }
end

-- Admitted sessions this instance let in without asking (the arguments): each still active is
-- seen now; the others (ended, left, revoked) are returned, to be forgotten by the instance.
local function seen(ids)
  local gone = {}
  for _, id in ipairs(ids) do
    local s = load(id)
    if s and s.st == 'a' then s.seen = now; save(id, s)
    else table.insert(gone, id) end
  end
  return gone
end

-- Sessions an instance kept on its own line while Redis did not answer (on_error = "local"),
-- as (session, ticket, state) triples, state 'a' (admitted), 'r' (released), 'q' (in line) or
-- 'x' (ended: left or revoked there). A session the store does not know is taken in (admitted
-- ones even past capacity: they are in already); one the local line let further than the store
-- had it (admitted or released while the store has it waiting) keeps that; an ended one ends.
-- The ticket counter moves past every ticket taken in. Returns how many sessions changed.
local function adopt(args)
  local seq = tonumber(redis.call('GET', K .. ':seq') or '0')
  local changed = 0
  for i = 1, #args - 2, 3 do
    local id, t, st = args[i], tonumber(args[i + 1]), args[i + 2]
    local s = load(id)
    local waiting_here = s and (s.st == 'q' or s.st == 'm')
    if st == 'x' then
      if s then remove(id, s); changed = changed + 1 end
    elseif not s then
      s = { t = t, st = st, seen = now, since = now, ret = true, ns = false, np = 0,
            rb = count('rel_total') }
      if st == 'a' then redis.call('HINCRBY', N, 'active', 1)
      elseif st == 'r' then redis.call('HINCRBY', N, 'released', 1)
      else s.st = 'q'; redis.call('ZADD', Q, t, id) end
      save(id, s)
      changed = changed + 1
      if t > seq then seq = t end
    elseif (st == 'a' and s.st ~= 'a') or (st == 'r' and waiting_here) then
      for _, k in ipairs({ Q, F, L, W }) do redis.call('ZREM', k, id) end
      if s.st == 'r' then redis.call('HINCRBY', N, 'released', -1) end
      redis.call('HINCRBY', N, st == 'a' and 'active' or 'released', 1)
      s.st = st; s.seen = now; s.since = now
      save(id, s)
      changed = changed + 1
    end
  end
  redis.call('SET', K .. ':seq', seq)
  return changed
end

-- The room's figures: active, released, waiting, joined, admitted at once, admitted when
-- released, releases, abandoned, left, duplicates, releases over the last minute, first release,
-- now, and the operator's overrides as JSON ('' : none set through a shared store).
-- The argument: the asking instance, recorded as live now; instances not seen for a minute are
-- dropped. Then come the lease holder, the last ticket handed out, the newest configuration
-- file's settings (JSON, the instance that offered them, their version), and the live instances
-- as (id, last seen ms) pairs. Between the last ticket and the file's settings: those who lost
-- their place at events' ends, and 1 while the room holds everyone for an event.
local function figures(me)
  local n, first = recent()
  local I = K .. ':inst'
  if me and me ~= '' then redis.call('HSET', I, me, now) end
  local live = {}
  local all = redis.call('HGETALL', I)
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) < now - 60000 then redis.call('HDEL', I, all[i])
    else table.insert(live, all[i]); table.insert(live, tonumber(all[i + 1])) end
  end
  local out = { 'figures', count('active'), count('released'), waiting(), count('joined'),
                count('adm_i'), count('adm_r'), count('rel_total'), count('abandoned'),
                count('left'), count('dup'), n, first, now, redis.call('GET', K .. ':o') or '',
                redis.call('GET', K .. ':lease') or '',
                tonumber(redis.call('GET', K .. ':seq') or '0'), count('ev_dropped'),
                holding() and 1 or 0 }
  local file = redis.call('HMGET', K .. ':c', 'json', 'from', 'v')
  for i = 1, 3 do table.insert(out, file[i] or (i == 3 and 0 or '')) end
  for _, x in ipairs(live) do table.insert(out, x) end
  return out
end

-- The tick's lease: the arguments are the instance and the lease ms. Returns the fencing value
-- while this instance holds the lease, '' when another does.
local function lease(me, ms)
  local holder = redis.call('GET', K .. ':lease')
  if holder == me then
    redis.call('PEXPIRE', K .. ':lease', ms)
    return redis.call('GET', K .. ':lease:fence')
  end
  if holder then return '' end
  redis.call('SET', K .. ':lease', me, 'PX', ms)
  local fence = tostring(redis.call('INCR', K .. ':lease:seq'))
  redis.call('SET', K .. ':lease:fence', fence)
  return fence
end
