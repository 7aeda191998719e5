"""Every Lua script of the waiting room, each with a header naming KEYS, ARGV and the reply.

A room's keys share one hash tag. fairq talks to one Redis server (not a Cluster):
the join with an access code checks and counts wrong codes (``waitingroom.guesses``),
reads the campaign's codes and takes the room's place in one script, so that such a
join costs one round trip.
Time always comes from the caller (ARGV), never from Redis ``TIME``, so tests can
drive it. Room hash fields are listed in ``waitingroom.rooms``.

``Scripts.register(redis)`` registers them once per client (redis-py sends
EVALSHA and loads a script only when the server does not know it).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

# Helpers shared by several room scripts; prepended to the scripts that use them.
_SNAPSHOT = """
local function snapshot(room, active)
  return {redis.call('HGETALL', room), redis.call('ZCARD', active)}
end
"""

# Opening, once: freeze the pre-queue size, keep the seed and the time, start the
# admission clock; a 'scheduled' room becomes 'open' (a paused or closed one stays so).
_OPEN_ROOM = """
local function open_room(room, seed, now)
  if redis.call('HEXISTS', room, 'opened_at_s') == 1 then return 0 end
  redis.call('HSET', room, 'prequeue_size', redis.call('HGET', room, 'pre_count') or '0',
             'seed', seed, 'opened_at_s', now, 'admit_last_s', now, 'admit_carry', '0')
  if redis.call('HGET', room, 'state') == 'scheduled' then
    redis.call('HSET', room, 'state', 'open')
  end
  return 1
end
"""

# The fence of a room whose state is durable ('durable' = '1', see waitingroom.durable):
# nothing is handed out while the state marker is missing (Redis lost its state and is
# not restored yet: 'restoring'), and the kind's counter never hands out a number above
# its ceiling, which the log has before Redis does ('fenced'; the caller records a
# higher ceiling and asks again). Returns nil when the join may go on.
_FENCE = """
local function fence(room, marker, kind, taken)
  if redis.call('HGET', room, 'durable') ~= '1' then return nil end
  if redis.call('EXISTS', marker) == 0 then return 'restoring' end
  local count = tonumber(redis.call('HGET', room, kind .. '_count') or '0')
  if count + taken > tonumber(redis.call('HGET', room, kind .. '_ceiling') or '0') then
    return 'fenced,' .. kind .. ',' .. tostring(count + taken)
  end
  return nil
end
"""

# The gate every join passes: refusals for all joins of the room, else the kind of
# ticket a join gets now ('pre' before opening, 'post' after) and, before opening,
# the time the pre-queue window opens (joins earlier than that are refused).
_JOIN_GATE = """
local function join_gate(room, default_prequeue_s)
  local h = redis.call('HMGET', room, 'state', 'opened_at_s', 'opens_at_s', 'prequeue_s')
  if not h[1] then return nil, {'not_found'} end
  if h[1] == 'closed' then return nil, {'closed'} end
  if h[2] then return 'post', nil, nil end
  return 'pre', nil, tonumber(h[3]) - tonumber(h[4] or default_prequeue_s)
end
"""

JOIN = (
    _FENCE
    + _JOIN_GATE
    + """
-- KEYS[1] room hash, KEYS[2] room code tickets hash, KEYS[3] the campaign's access codes,
-- KEYS[4] the client's wrong-code counter of this window (keys.code_guesses_of_client),
-- KEYS[5] the code prefix's wrong-code counter of this window (keys.code_guesses_of_prefix),
-- KEYS[6] the state marker
-- ARGV[1] now_s, ARGV[2] a fresh ticket id, ARGV[3] the pre-queue window (s) of a room
-- that has no 'prequeue_s' field, ARGV[4] the wrong codes a client may try per window,
-- ARGV[5] the wrong codes a prefix may see per window (each 0: not checked, not counted),
-- ARGV[6] the window (s), ARGV[7..] the hashes the code may be stored under (keyed first,
-- then the plain hash of a code issued before the secret)
-- A join with an access code (anonymous joins go through JOIN_MANY), in one round trip:
-- a client or prefix whose counter has reached its limit is refused before the code is
-- looked up (a right code too, else the refusal would tell right from wrong); the code is
-- looked up among the campaign's codes (a code not found adds one to both counters, each
-- kept a window from its first wrong code), then the join is taken. A join before opening
-- is 'pre' (numbered by pre_count), after opening 'post' (numbered by post_count). Before
-- opens_at_s - prequeue_s a join is refused. A code that holds a ticket gets it back.
-- A durable room's new ticket passes the fence first.
-- Returns {'too_many_attempts', 'client' | 'prefix'} | {'invalid_code'} | {'not_found'} |
--   {'closed'} | {'too_early', pre-queue opening time (s)} |
--   {the fence's refusal: 'restoring' or 'fenced,<kind>,<number needed>'} |
--   {'ok', ticket JSON {kind, number, ticket_id, issued_at_s}, new (1|0), the code's
--    hash (the ARGV it was found under), its priority group}
local room, code_tickets, codes = KEYS[1], KEYS[2], KEYS[3]
local now, ticket_id = ARGV[1], ARGV[2]
local limits = {{KEYS[4], tonumber(ARGV[4]), 'client'}, {KEYS[5], tonumber(ARGV[5]), 'prefix'}}
for _, limit in ipairs(limits) do
  if limit[2] > 0 and tonumber(redis.call('GET', limit[1]) or '0') >= limit[2] then
    return {'too_many_attempts', limit[3]}
  end
end
local code, group
for i = 7, #ARGV do
  group = redis.call('HGET', codes, ARGV[i])
  if group then
    code = ARGV[i]
    break
  end
end
if not code then
  for _, limit in ipairs(limits) do
    if limit[2] > 0 and redis.call('INCR', limit[1]) == 1 then
      redis.call('EXPIRE', limit[1], ARGV[6])
    end
  end
  return {'invalid_code'}
end
local kind, refusal, window_opens = join_gate(room, ARGV[3])
if refusal then return refusal end
if window_opens and tonumber(now) < window_opens then
  return {'too_early', tostring(window_opens)}
end
local held = redis.call('HGET', code_tickets, code)
if held then return {'ok', held, 0, code, group} end
local fenced = fence(room, KEYS[6], kind, 1)
if fenced then return {fenced} end
local number = redis.call('HINCRBY', room, kind .. '_count', 1)
local ticket = cjson.encode({kind = kind, number = number, ticket_id = ticket_id,
                             issued_at_s = now})
redis.call('HSET', code_tickets, code, ticket)
return {'ok', ticket, 1, code, group}
"""
)

# Numbers for ``count`` anonymous joins of ``room`` arriving at the times in
# ``times`` (comma-separated, in order), as one atomic step: all 'pre' (numbered by
# pre_count) or all 'post' (numbered by post_count); those taken get contiguous
# numbers in order. Before opening, a join whose time < opens_at_s - prequeue_s is
# refused. Returns one string (a reply of one element costs the client less to read
# than a list):
#   'not_found' | 'closed' | the fence's refusal (restoring, or fenced with the number needed) |
#   'ok,<kind>,<pre-queue opening time (s) or nothing>,<the first join's number>,<refused>':
#   the joins taken are numbered first, first + 1, ... in order; refused is '' when
#   every join was taken, else one character per join: '1' refused, '0' taken
_TAKE_JOINS = (
    _FENCE
    + _JOIN_GATE
    + """
local function take_joins(room, marker, default_prequeue_s, count, times)
  local kind, refusal, window_opens = join_gate(room, default_prequeue_s)
  if refusal then return refusal[1] end
  local taken, refused = count, ''
  if window_opens then
    local flags = {}
    for now in string.gmatch(times, '[^,]+') do
      if tonumber(now) < window_opens then
        flags[#flags + 1] = '1'
        taken = taken - 1
      else
        flags[#flags + 1] = '0'
      end
    end
    if taken < count then refused = table.concat(flags) end
  end
  local fenced = fence(room, marker, kind, taken)
  if fenced then return fenced end
  local first = redis.call('HINCRBY', room, kind .. '_count', taken) - taken + 1
  local opens = window_opens and tostring(window_opens) or ''
  return 'ok,' .. kind .. ',' .. opens .. ',' .. tostring(first) .. ',' .. refused
end
"""
)

JOIN_MANY = (
    _TAKE_JOINS
    + """
-- KEYS[1] room hash, KEYS[2] the state marker
-- ARGV[1] the pre-queue window (s) of a room that has no 'prequeue_s' field,
-- ARGV[2] the number of joins, ARGV[3] the now_s of each anonymous join, comma-separated,
-- in the order the joins arrived (one argument for the batch: cheaper to send than one
-- per join, and read only before opening, the one time a join's time matters)
-- The joins of one call, numbered as one atomic step (take_joins).
-- Returns take_joins's string.
return take_joins(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), ARGV[3])
"""
)

REJOIN = (
    _TAKE_JOINS
    + """
-- KEYS[1] room hash, KEYS[2] room active zset, KEYS[3] the state marker
-- ARGV[1] the pre-queue window (s) of a room that has no 'prequeue_s' field,
-- ARGV[2] the admitted position of the ticket joining again, ARGV[3] now_s
-- A ticket that was admitted joins again without an access code (a reload, another
-- tab), in one round trip: it keeps its place while its position is active (its
-- deadline >= now_s: admitted and not lapsed, or booking); else it gets a new place
-- as an anonymous join does (its turn passed, or its booking ended).
-- Returns 'kept' | take_joins's string for one join.
local deadline = redis.call('ZSCORE', KEYS[2], ARGV[2])
if deadline and tonumber(deadline) >= tonumber(ARGV[3]) then return 'kept' end
return take_joins(KEYS[1], KEYS[3], ARGV[1], 1, ARGV[3])
"""
)

OPEN = (
    _SNAPSHOT
    + _OPEN_ROOM
    + """
-- KEYS[1] room hash, KEYS[2] room active zset
-- ARGV[1] seed, ARGV[2] now_s
-- Opens the room now unless it is open already (then the stored seed stays).
-- Returns {'not_found'} | {'ok', opened by this call (1|0), {HGETALL room}, ZCARD active}
if not redis.call('HGET', KEYS[1], 'state') then return {'not_found'} end
local opened = open_room(KEYS[1], ARGV[1], ARGV[2])
local snap = snapshot(KEYS[1], KEYS[2])
return {'ok', opened, snap[1], snap[2]}
"""
)

SET_STATE = (
    _SNAPSHOT
    + """
-- KEYS[1] room hash, KEYS[2] room active zset
-- ARGV[1] 'open' | 'paused' | 'closed'
-- 'open' resumes: the state becomes 'open' if the room has opened, else 'scheduled'.
-- Returns {'not_found'} | {'ok', {HGETALL room}, ZCARD active}
local state = ARGV[1]
if not redis.call('HGET', KEYS[1], 'state') then return {'not_found'} end
if state == 'open' and redis.call('HEXISTS', KEYS[1], 'opened_at_s') == 0 then
  state = 'scheduled'
end
redis.call('HSET', KEYS[1], 'state', state)
local snap = snapshot(KEYS[1], KEYS[2])
return {'ok', snap[1], snap[2]}
"""
)

SET_ADMISSION = (
    _SNAPSHOT
    + """
-- KEYS[1] room hash, KEYS[2] room active zset
-- ARGV[1], ARGV[2], ... pairs of field, value: any of rate_per_s, max_active, ramp_s,
--   admission_mode, pow_difficulty (checked by the caller); no ARGV only reads
-- Returns {'not_found'} | {'ok', {HGETALL room}, ZCARD active}
if not redis.call('HGET', KEYS[1], 'state') then return {'not_found'} end
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
local snap = snapshot(KEYS[1], KEYS[2])
return {'ok', snap[1], snap[2]}
"""
)

SET_SOLD_OUT = """
-- KEYS[1] room hash
-- ARGV[1] '1' (sold out) | '0', ARGV[2] verdict sequence number or '' (always apply)
-- A numbered verdict applies only if newer than the last numbered one applied, so
-- verdicts written by several event consumers cannot overtake each other.
-- Returns 'not_found' | 'stale' | 'same' | 'changed'
if not redis.call('HGET', KEYS[1], 'state') then return 'not_found' end
if ARGV[2] ~= '' then
  local applied = tonumber(redis.call('HGET', KEYS[1], 'sold_out_seq') or '0')
  if tonumber(ARGV[2]) <= applied then return 'stale' end
  redis.call('HSET', KEYS[1], 'sold_out_seq', ARGV[2])
end
local before = redis.call('HGET', KEYS[1], 'sold_out') or '0'
redis.call('HSET', KEYS[1], 'sold_out', ARGV[1])
if before == ARGV[1] then return 'same' end
return 'changed'
"""

# Admission proper, called by ADMIT when the room is open and not sold out.
# The budget grows by the admission rate integrated over the time since the last
# step, keeps its fraction, and is capped at one second's worth at the current rate
# (at least one place, unless the rate is 0). During the ramp (ramp_s > 0, the first
# ramp_s seconds after opened_at_s) the rate rises linearly from ramp_start * rate_per_s
# to rate_per_s. 'limit' (auto mode) caps the active bookers like max_active.
_ADMIT_ROOM = """
-- Seconds of full rate that the ramped rate yields from the opening to u s after it.
local function ramp_area(u, ramp, start)
  if u <= 0 then return 0 end
  if ramp <= 0 then return u end
  if u >= ramp then return ramp * (1 + start) / 2 + (u - ramp) end
  return start * u + (1 - start) * u * u / (2 * ramp)
end

local function rate_fraction(u, ramp, start)
  if ramp <= 0 or u >= ramp then return 1 end
  return start + (1 - start) * math.max(0, u) / ramp
end

local function admit_room(room, active, now, ramp_start, limit)
  local h = redis.call('HMGET', room, 'rate_per_s', 'max_active', 'admit_window_s',
                       'prequeue_size', 'post_count', 'cursor', 'admit_last_s', 'admit_carry',
                       'ramp_s', 'opened_at_s')
  local rate, max_active, window = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
  local queue = tonumber(h[4] or '0') + tonumber(h[5] or '0')
  local cursor = tonumber(h[6] or '0')
  local last = tonumber(h[7] or now)
  local ramp, opened = tonumber(h[9] or '0'), tonumber(h[10] or now)
  local cap = 0
  if rate > 0 then cap = math.max(rate * rate_fraction(now - opened, ramp, ramp_start), 1) end
  local gained = ramp_area(now - opened, ramp, ramp_start)
                 - ramp_area(last - opened, ramp, ramp_start)
  local budget = math.min(tonumber(h[8] or '0') + rate * math.max(0, gained), cap)
  local occupied = redis.call('ZCARD', active)
  local room_left = max_active - occupied
  if limit then room_left = math.min(room_left, limit - occupied) end
  local k = math.min(math.floor(budget), room_left, queue - cursor)
  if k < 0 then k = 0 end
  local deadline = now + window
  for first = cursor + 1, cursor + k, 500 do
    local args = {}
    for p = first, math.min(first + 499, cursor + k) do
      args[#args + 1] = deadline
      args[#args + 1] = p
    end
    redis.call('ZADD', active, unpack(args))
  end
  redis.call('HSET', room, 'cursor', cursor + k, 'admit_last_s', math.max(now, last),
             'admit_carry', budget - k)
  return k
end
"""

ADMIT = (
    _SNAPSHOT
    + _OPEN_ROOM
    + _ADMIT_ROOM
    + """
-- KEYS[1] room hash, KEYS[2] room active zset, KEYS[3] room fence counter,
-- KEYS[4] the state marker
-- ARGV[1] the caller's fencing token, ARGV[2] now_s, ARGV[3] a seed (kept only if
--   this call opens the room), ARGV[4] the ramp's start fraction of rate_per_s,
--   ARGV[5] in auto mode the most active bookers the inventory can serve, else ''
-- Refuses a token that is not the current fence. Else: opens the room when
-- now >= opens_at_s; drops active entries whose deadline < now; if the state is
-- 'open' and not sold out, admits positions cursor+1..cursor+k (k limited by the
-- rate budget, max_active, in auto mode by ARGV[5], and the queue) with deadline
-- now + admit_window_s. A room in auto mode without ARGV[5] admits nobody. A durable
-- room ('durable' = '1') admits nobody while the state marker is missing ('restoring')
-- nor before its opening is in the log ('opening_logged', see waitingroom.durable).
-- Returns {'fenced'} | {'not_found'} | {'restoring'} |
--   {'ok', admitted k, opened by this call (1|0), {HGETALL room}, ZCARD active}
local room, active = KEYS[1], KEYS[2]
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {'fenced'} end
local state = redis.call('HGET', room, 'state')
if not state then return {'not_found'} end
local durable = redis.call('HGET', room, 'durable') == '1'
if durable and redis.call('EXISTS', KEYS[4]) == 0 then return {'restoring'} end
local now = tonumber(ARGV[2])
local opened = 0
if now >= tonumber(redis.call('HGET', room, 'opens_at_s')) then
  opened = open_room(room, ARGV[3], ARGV[2])
  state = redis.call('HGET', room, 'state')
end
redis.call('ZREMRANGEBYSCORE', active, '-inf', '(' .. ARGV[2])
local limit = nil
if redis.call('HGET', room, 'admission_mode') == 'auto' then limit = tonumber(ARGV[5]) or 0 end
local admitted = 0
local logged = not durable or redis.call('HGET', room, 'opening_logged') == '1'
if state == 'open' and logged and redis.call('HGET', room, 'sold_out') ~= '1' then
  admitted = admit_room(room, active, now, tonumber(ARGV[4]), limit)
else
  redis.call('HSET', room, 'admit_last_s', ARGV[2], 'admit_carry', '0')
end
local snap = snapshot(room, active)
return {'ok', admitted, opened, snap[1], snap[2]}
"""
)

ACQUIRE = """
-- KEYS[1] room leader, KEYS[2] room fence counter
-- ARGV[1] instance id, ARGV[2] lease in ms
-- Takes (or re-takes) the lead unless another instance holds it, and raises the fence.
-- Returns the new fencing token, or nil when another instance leads.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return false end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])
"""

RENEW = """
-- KEYS[1] room leader
-- ARGV[1] instance id, ARGV[2] lease in ms
-- Extends the lease only if the caller still holds it.
-- Returns 1 if extended, 0 if another instance (or none) leads.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

RELEASE = """
-- KEYS[1] a string held by one owner: a room leader, or an identity claim
-- ARGV[1] the owner: the admitter's instance id, or the claiming booking id
-- Compare-and-delete: gives the lead (so another instance need not wait for the TTL)
-- or the claim up only if ARGV[1] holds it.
-- Returns 1 if released, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

CLAIM_IDENTITY = """
-- KEYS[1] identity claim (keys.identity_claim), KEYS[2] the state marker
-- ARGV[1] the claiming booking id, ARGV[2] the holder the caller has seen end
--   ('' when it has seen none), ARGV[3] the claim's TTL (s), ARGV[4] '1' when claims
--   are durable: none is taken while the state marker is missing (Redis lost its
--   claims and they are not restored yet)
-- Compare-and-set: the claim becomes ARGV[1]'s if it is free or held by ARGV[2]
-- (a take-over: of two callers that saw the same holder end, one wins). A claim
-- ARGV[1] holds already stays as it is. Whether a holder has ended is decided by
-- the caller (its booking views live in gateway memory, not in Redis).
-- Returns {'taken', ''} | {'kept', ''} | {'held', the holding booking id} | {'restoring', ''}
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then return {'restoring', ''} end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return {'kept', ''} end
if holder and holder ~= ARGV[2] then return {'held', holder} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return {'taken', ''}
"""

UPDATE_INVENTORY = """
-- KEYS[1] campaign inventory hash
-- ARGV[1] the summary's at_ms, then pairs: county id, pairs_left
-- Stores each county's pairs_left ('pairs:<county>') unless a later summary of that
-- county is stored ('at:<county>'), and numbers the result ('seq'). The county's
-- confirmations counted since its last summary ('confirmed:<county>') start again at
-- 0: the summary follows them in the county's partition, so it counts them.
-- Returns {seq, {HGETALL inventory}}
local inv = KEYS[1]
local at = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local county = ARGV[i]
  local stored = tonumber(redis.call('HGET', inv, 'at:' .. county) or '-1')
  if at >= stored then
    redis.call('HSET', inv, 'at:' .. county, ARGV[1], 'pairs:' .. county, ARGV[i + 1],
      'confirmed:' .. county, 0)
  end
end
local seq = redis.call('HINCRBY', inv, 'seq', 1)
return {seq, redis.call('HGETALL', inv)}
"""


RAISE_CEILING = """
-- KEYS[1] room hash, KEYS[2] the state marker
-- ARGV[1] 'pre' | 'post', ARGV[2] a ceiling the state log has (waitingroom.durable)
-- The kind's counter may hand out numbers up to the ceiling; a ceiling never falls.
-- Not while the marker is missing: a counter not restored yet may be behind.
-- Returns 'not_found' | 'restoring' | 'ok'
if not redis.call('HGET', KEYS[1], 'state') then return 'not_found' end
if redis.call('EXISTS', KEYS[2]) == 0 then return 'restoring' end
local field = ARGV[1] .. '_ceiling'
local ceiling = tonumber(redis.call('HGET', KEYS[1], field) or '0')
if tonumber(ARGV[2]) > ceiling then redis.call('HSET', KEYS[1], field, ARGV[2]) end
return 'ok'
"""

MARK_OPENING_LOGGED = """
-- KEYS[1] room hash
-- ARGV[1] the seed of the opening the state log now has, ARGV[2] a post-counter ceiling
-- the state log has with it
-- Lets a durable room admit (ADMIT): its opening will come back after a loss; and its
-- post counter hand out numbers up to the ceiling (a ceiling never falls).
-- Returns 1 if marked, 0 if the room has no such opening
if redis.call('HGET', KEYS[1], 'seed') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'opening_logged', '1')
if tonumber(ARGV[2]) > tonumber(redis.call('HGET', KEYS[1], 'post_ceiling') or '0') then
  redis.call('HSET', KEYS[1], 'post_ceiling', ARGV[2])
end
return 1
"""

CHECK_MARKER = """
-- KEYS[1] the state marker
-- ARGV[1] the run id of the server this connection talks to
-- A marker of another run id was set on another server (this one was restarted from
-- an older copy, or is a replica promoted after a failover): its state may be behind
-- the log, so the marker goes and durable rooms hand out nothing until restored.
-- Returns 1 if the marker is this server's, 0 otherwise (then it is gone)
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
redis.call('DEL', KEYS[1])
return 0
"""

RESTORE_ROOM = """
-- KEYS[1] room hash, KEYS[2] set of room names, KEYS[3] room active zset
-- ARGV[1] room name, ARGV[2] now_s (the restore's time), ARGV[3] the operator's last
-- state from the log or '', ARGV[4] the opening's seed or '', ARGV[5] its pre-queue
-- size, ARGV[6] its time, ARGV[7] the pre counter's logged ceiling, ARGV[8] the post
-- counter's, ARGV[9] the admission cursor's floor (every place up to it was admitted),
-- ARGV[10] n, the number of admitted ranges that follow, ARGV[11..10+3n] triples of
-- first place, last place, the latest deadline they can have; then pairs of
-- configuration field, value
-- Puts a room back as the state log has it: configuration, state and opening from the
-- log; each counter restarts at the higher of what Redis has and the logged ceiling
-- (numbers below it may be in people's hands), and its ceiling is the count, so the
-- next join records a new one first. The cursor never goes back below the floor, and
-- the places of the ranges count as active until their deadline (a deadline already
-- later in Redis stays): admitted people keep their turn and count against the cap.
-- Returns 'ok'
local room = KEYS[1]
local ranges = tonumber(ARGV[10])
local config = 11 + 3 * ranges
if #ARGV >= config then redis.call('HSET', room, unpack(ARGV, config)) end
redis.call('HSET', room, 'durable', '1', 'restored_at_s', ARGV[2])
local opened = redis.call('HEXISTS', room, 'opened_at_s') == 1
if ARGV[4] ~= '' then
  redis.call('HSET', room, 'seed', ARGV[4], 'prequeue_size', ARGV[5], 'opened_at_s', ARGV[6],
             'opening_logged', '1')
  if not opened then redis.call('HSET', room, 'admit_last_s', ARGV[2], 'admit_carry', '0') end
  opened = true
end
for i, kind in ipairs({'pre', 'post'}) do
  local count = tonumber(redis.call('HGET', room, kind .. '_count') or '0')
  local ceiling = math.max(count, tonumber(ARGV[6 + i]))
  redis.call('HSET', room, kind .. '_count', ceiling, kind .. '_ceiling', ceiling)
end
local cursor = tonumber(redis.call('HGET', room, 'cursor') or '0')
redis.call('HSET', room, 'cursor', math.max(cursor, tonumber(ARGV[9])))
for r = 0, ranges - 1 do
  local first, last = tonumber(ARGV[11 + 3 * r]), tonumber(ARGV[12 + 3 * r])
  local deadline = ARGV[13 + 3 * r]
  for from = first, last, 500 do
    local args = {}
    for p = from, math.min(from + 499, last) do
      args[#args + 1] = deadline
      args[#args + 1] = p
    end
    redis.call('ZADD', KEYS[3], 'GT', unpack(args))
  end
end
local state = ARGV[3]
if state == '' then state = redis.call('HGET', room, 'state') or 'scheduled' end
if state == 'open' and not opened then state = 'scheduled' end
if state == 'scheduled' and opened then state = 'open' end
redis.call('HSET', room, 'state', state)
redis.call('SADD', KEYS[2], ARGV[1])
return 'ok'
"""


START_BOOKING = """
-- KEYS[1] room active zset
-- ARGV[1] the admitted position, ARGV[2] now_s, ARGV[3] its deadline while it books
-- A booking starts on an admitted place that is still active (deadline not passed):
-- the deadline becomes ARGV[3] if that is later. A lapsed place (deadline passed, or
-- removed by the admitter, which gave it to the next in line) stays out: taking it
-- back would put one booker more than the cap allows.
-- Returns the place's deadline before (the booking may start), or nil if lapsed or never
-- admitted
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not deadline or tonumber(deadline) < tonumber(ARGV[2]) then return false end
redis.call('ZADD', KEYS[1], 'GT', ARGV[3], ARGV[1])
return deadline
"""


UNDO_START_BOOKING = """
-- KEYS[1] room active zset
-- ARGV[1] the admitted position, ARGV[2] the deadline a booking's START_BOOKING set,
-- ARGV[3] the deadline START_BOOKING returned (the place's before)
-- A booking refused before it reached the log gives its place back the deadline from
-- before, only while the place still has the deadline that booking set: a place the
-- admitter removed stays out, and a place another booking (same token, at the same
-- time) moved on keeps that booking's deadline.
-- Returns 1 if the deadline was put back, else 0
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not deadline or tonumber(deadline) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
return 1
"""


RECORD_POINT = """
-- KEYS[1] the room's history (sorted set scored by time bucket)
-- ARGV[1] the point's time bucket, ARGV[2] the point (JSON), ARGV[3] the oldest bucket kept
-- Returns 1 when the point was added, 0 when the bucket had one already (another
-- gateway sampled it first: one point per bucket whichever gateways sample)
local added = 0
if redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[1]) == 0 then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
  added = 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
return added
"""

STORE_CODES = """
-- KEYS[1] the campaign's access codes (hash: code hash -> priority group)
-- ARGV[1] the group, ARGV[2..] the hashes of new codes
-- Returns, per hash, 1 when stored, 0 when it was there already (a collision: that
-- code is drawn again). One round trip per batch instead of one HSETNX per code.
local stored = {}
for i = 2, #ARGV do
  stored[i - 1] = redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[1])
end
return stored
"""


@dataclass(frozen=True, slots=True)
class Scripts:
    """The scripts, registered on one client."""

    join: AsyncScript
    join_many: AsyncScript
    rejoin: AsyncScript
    open: AsyncScript
    set_state: AsyncScript
    set_admission: AsyncScript
    set_sold_out: AsyncScript
    admit: AsyncScript
    acquire: AsyncScript
    renew: AsyncScript
    release: AsyncScript
    update_inventory: AsyncScript
    claim_identity: AsyncScript
    start_booking: AsyncScript
    undo_start_booking: AsyncScript
    record_point: AsyncScript
    raise_ceiling: AsyncScript
    mark_opening_logged: AsyncScript
    check_marker: AsyncScript
    restore_room: AsyncScript

    @classmethod
    def register(cls, redis: aioredis.Redis) -> Scripts:
        return cls(
            join=redis.register_script(JOIN),
            join_many=redis.register_script(JOIN_MANY),
            rejoin=redis.register_script(REJOIN),
            open=redis.register_script(OPEN),
            set_state=redis.register_script(SET_STATE),
            set_admission=redis.register_script(SET_ADMISSION),
            set_sold_out=redis.register_script(SET_SOLD_OUT),
            admit=redis.register_script(ADMIT),
            acquire=redis.register_script(ACQUIRE),
            renew=redis.register_script(RENEW),
            release=redis.register_script(RELEASE),
            update_inventory=redis.register_script(UPDATE_INVENTORY),
            claim_identity=redis.register_script(CLAIM_IDENTITY),
            start_booking=redis.register_script(START_BOOKING),
            undo_start_booking=redis.register_script(UNDO_START_BOOKING),
            record_point=redis.register_script(RECORD_POINT),
            raise_ceiling=redis.register_script(RAISE_CEILING),
            mark_opening_logged=redis.register_script(MARK_OPENING_LOGGED),
            check_marker=redis.register_script(CHECK_MARKER),
            restore_room=redis.register_script(RESTORE_ROOM),
        )
