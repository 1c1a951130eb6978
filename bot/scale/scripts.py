"""The Lua scripts that make the worker's steps atomic and fenced by the room's lease.

Every step that reads a room's events, publishes its actions or acknowledges its events first
checks, inside Redis, that the lease ``{p}:owner:{room}`` still holds this worker's id. A worker
that lost its lease (paused, partitioned, too slow) can therefore neither take new entries,
nor publish a thank-you, nor acknowledge anything: it only finds out and drops the room.

- ``MEMBERSHIP``: heartbeat (Redis server time, so hosts' clocks do not matter), prune workers
  silent for a lease, renew this worker's leases (compare-and-pexpire), list the rooms.
- ``READ``: per room, if the lease is ours: ``XAUTOCLAIM`` the group's pending entries from a
  cursor (taking over a room: the previous owner's unacknowledged entries, in id order) or
  ``XREADGROUP >`` (new entries). Entries are thus only ever delivered to the lease holder.
- ``PUBLISH``: per action, ``HSETNX`` a marker in ``{p}:done:{room}``; only a new marker
  ``XADD``s the action to ``{p}:actions:{room}``. Returns which actions were new.
- ``CHECKPOINT``: store the engine snapshot, ``XACK`` every entry processed since the last
  checkpoint, optionally fold a finished stream into lifetime totals and the session list, clear
  the markers, renew the lease: all or nothing, and nothing if the lease is lost.
- ``RELEASE``: delete the lease if it is still ours.
"""

from __future__ import annotations

MEMBERSHIP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - lease))
local alive = redis.call('ZCARD', KEYS[1])
local renewed = {}
for i = 3, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], lease)
    renewed[#renewed + 1] = 1
  else
    renewed[#renewed + 1] = 0
  end
end
return {now, alive, renewed, redis.call('SMEMBERS', KEYS[2])}
"""

LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# KEYS: owner_1, stream_1, owner_2, stream_2, ...  ARGV: me, group, count, mode_1, mode_2, ...
# mode '>' reads new entries; any other value is an XAUTOCLAIM cursor ('0-0' to start).
# Per room: false (lease not ours), {'>', entries}, {next_cursor, entries, deleted_count} or {'!', error}.
# ``entries`` is one string: entry id, LF, event, LF, entry id, ... (the field ``e`` of each entry; '!' for an
# entry without one): one reply element per room instead of four per entry, which is most of the
# client's parsing time without hiredis.
READ = """
local function flat(entries)
  local parts = {}
  for _, entry in ipairs(entries) do
    if entry and entry[2] then
      local value = '!'
      local fields = entry[2]
      for j = 1, #fields, 2 do
        if fields[j] == 'e' then value = fields[j + 1] end
      end
      if string.find(value, '\\n', 1, true) then value = '!' end
      parts[#parts + 1] = entry[1]
      parts[#parts + 1] = value
    end
  end
  return table.concat(parts, '\\n')
end
local out = {}
local n = #KEYS / 2
for i = 1, n do
  local owner, stream, mode = KEYS[2 * i - 1], KEYS[2 * i], ARGV[3 + i]
  if redis.call('GET', owner) ~= ARGV[1] then
    out[i] = false
  elseif mode == '>' then
    local r = redis.pcall('XREADGROUP', 'GROUP', ARGV[2], ARGV[1], 'COUNT', ARGV[3], 'STREAMS', stream, '>')
    if type(r) == 'table' and r.err then
      out[i] = {'!', r.err}
    elseif r then
      out[i] = {'>', flat(r[1][2])}
    else
      out[i] = {'>', ''}
    end
  else
    local r = redis.pcall('XAUTOCLAIM', stream, ARGV[2], ARGV[1], 0, mode, 'COUNT', ARGV[3])
    if type(r) == 'table' and r.err then
      out[i] = {'!', r.err}
    else
      out[i] = {r[1], flat(r[2]), #(r[3] or {})}
    end
  end
end
return out
"""


def split_entries(blob: bytes) -> list[tuple[bytes, bytes]]:
    """``READ``'s entries string as (entry id, event JSON) pairs."""
    if not blob:
        return []
    parts = blob.split(b"\n")
    return list(zip(parts[0::2], parts[1::2]))


# KEYS: owner, done (hash), actions (stream)
# ARGV: me, marker_ttl_ms, stream ('1' publish / '0' markers only), maxlen ('0': no trim), marker_1, action_1, ...
# -> -1 (lease not ours) or the 1-based indexes of the actions whose marker was new.
PUBLISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local new = {}
for i = 5, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], '1') == 1 then
    if ARGV[3] == '1' then
      if ARGV[4] == '0' then
        redis.call('XADD', KEYS[3], '*', 'a', ARGV[i + 1])
      else
        redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'a', ARGV[i + 1])
      end
    end
    new[#new + 1] = (i - 3) / 2
  end
end
if #ARGV >= 5 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return new
"""

# KEYS: owner, events (stream), snapshot (hash), done (hash), lifetime (hash), sessions (room list),
#       sessions (all rooms' list)
# ARGV: me, group, lease_ms, snapshot data ('' deletes it), saved_at, clear markers ('1'/'0'),
#       n lifetime pairs, viewer_1, totals_1, ..., summary ('' none), entry ids to acknowledge...
# -> 1, or 0 when the lease is not ours (then nothing changed).
CHECKPOINT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[7])
local i = 8
if n > 0 then
  for j = 0, n - 1, 200 do
    local args = {}
    for k = j, math.min(n, j + 200) - 1 do
      args[#args + 1] = ARGV[i + 2 * k]
      args[#args + 1] = ARGV[i + 2 * k + 1]
    end
    redis.call('HSET', KEYS[5], unpack(args))
  end
end
i = i + 2 * n
local summary = ARGV[i]
if summary ~= '' then
  redis.call('LPUSH', KEYS[6], summary)
  redis.call('LPUSH', KEYS[7], summary)
end
if ARGV[4] == '' then
  redis.call('DEL', KEYS[3])
else
  redis.call('HSET', KEYS[3], 'saved_at', ARGV[5], 'data', ARGV[4])
end
for j = i + 1, #ARGV, 500 do
  redis.call('XACK', KEYS[2], ARGV[2], unpack(ARGV, j, math.min(#ARGV, j + 499)))
end
if ARGV[6] == '1' then redis.call('DEL', KEYS[4]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
