"""The room log's layout in Redis: its keys, the Lua scripts that change them, and what they publish.

Keys (each room's carry its join key as a hash tag, so a Redis Cluster keeps a room on one node):

    chat:{KEY}:room   hash: created, users (the last user id handed out), offset (the last talk's),
                      pseq (the number of the room's latest presence news); its control state: cseq
                      (the number of its latest change), title (if it has one), locked ("1" if locked);
                      first (the first talk retention kept, once it erased some)
    chat:{KEY}:talks  stream: one entry per talk, id "<offset>-0", fields u (user id), t (time),
                      p (payload), n (the sender's name) and i (its talk id) when it has them;
                      trimmed to about ``retention`` entries (XADD MAXLEN ~); an edited or deleted
                      talk leaves it, with the talks of its stream node (`redischanges`)
    chat:{KEY}:moved  sorted set: the talks taken out of the stream, each as it is now, scored by its
                      offset (a deleted one keeps no text and no name); with ``talks``, the room's
                      talks; trimmed with the ids
    chat:{KEY}:mods   set: the moderators' user ids
    chat:{KEY}:bans   set: the user ids banned from the room (their tokens join no more)
    chat:{KEY}:changes
                      stream: one entry per change of the room, id "<seq>-0" (`redischanges`: no
                      talk's text), trimmed to about ``retention`` entries: what a process that missed
                      some reads back
    chat:{KEY}:ended  an ended room's end, as published, for a day (every other key of the room is gone)
    chat:{KEY}:users  hash: "n:<user id>" → the user's name, "t:<token hash>" → the user id
                      (version 2: a resume token's SHA-256, never the token); for each signed-in
                      user, "s:<subject>" → its user id and "S:<user id>" → its subject (the
                      subject as given: a field name is binary-safe, it is never parsed), and
                      "K:<user id>" → the key of its name (`chatcore.identity.NameKey`, the core's)
                      if it holds one; "k:<name key>" → how many signed-in users hold that key (no
                      unsigned user takes a name with it)
    chat:{KEY}:ids    sorted set: "<user id>:<talk id>" scored by the talk's offset, trimmed to the
                      last ``retention`` offsets: one talk per user and id while the log keeps it
    chat:{KEY}:sent:<origin>
                      sorted set: the offset of each talk the process ``origin`` stored, scored by
                      its request number, kept until that process has the answer (and its latest
                      few), the key gone a day after its last talk (`SENT_TTL_MS`): a request sent
                      again is answered as the first time, a late copy of one answered already
                      stores nothing
    chat:{KEY}:who    sorted set: "<origin>:<user id>" for each user with a connection to the room
                      on the process ``origin``, scored by when it expires (ms, Redis's clock): each
                      process renews its own every ttl/3 seconds, so a dead one's expire
    chat:{KEY}:live   channel, in offset, change and presence order (each published by the script
                      that makes it):
                      a talk     "<offset>\\n<user id>\\n<time>\\n<name>\\n<talk id>\\n<payload>", after
                                 "V\\n" when its sender was signed in (stream field v: "1")
                      presence   "P\\n<pseq>\\n<origin>\\n<user id>\\n<1|0|r>\\n<name>"
                                 (1: came, 0: left, r: renamed, followed by v for a signed-in user;
                                 an empty name or talk id is none)
                      a change   "C\\n<seq>\\n..." and retention's "X\\n<first offset kept>" (`redischanges`)
                      typing     "T\\n<origin>\\n<user id>" (published as is, by no script: kept
                                 nowhere, numbered in no order, lost if nobody listens)
    chat:epoch        a random value, set once: a Redis that comes back without its data has another
    chat:sweep        retention's lock: one process at a time sweeps the rooms

A room's talks are those of its last ``retention`` offsets (a stream entry further back may linger until
XADD trims it: it is never read). Retention (`Expire`) trims them by time as well (XTRIM MINID: exactly).
"""

from __future__ import annotations

import hashlib

from chatcore import LoggedTalk, PresenceHeard, TypingHeard
from chatcore.results import Expired, LoggedChange

from .redischanges import AGE, CHANGE, CONTROL, END_QUIET, FILL, FIRST, TRIM, published_change

EPOCH_KEY = "chat:epoch"
SWEEP_KEY = "chat:sweep"
SENT_TTL_MS = 24 * 3600 * 1000
"""How long a process's records of the talks it stored in a room outlive its last talk there (a process gone, or one
that cannot reach Redis for that long, leaves nothing behind)."""

# Every script that writes checks the room first: a room Redis does not have (lost with its data) is never
# brought back piecemeal. Times in presence are Redis's (TIME, in ms): one clock for every host.

_HOLD = """
local function hold(users, user, key)
  local old = redis.call('HGET', users, 'K:' .. user)
  if old == key then return end
  if old and redis.call('HINCRBY', users, 'k:' .. old, -1) <= 0 then redis.call('HDEL', users, 'k:' .. old) end
  redis.call('HSET', users, 'K:' .. user, key)
  redis.call('HINCRBY', users, 'k:' .. key, 1)
end
"""
"""The signed-in ``user`` holds the name key ``key`` in the room's ``users`` hash, instead of the one it held."""

ADD_USER = _HOLD + """
if ARGV[1] ~= '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
  redis.call('HSET', KEYS[1], 'created', ARGV[1], 'users', 0, 'offset', 0, 'pseq', 0)
elseif redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local subject = ARGV[6]  -- (nil: no subject; a field name only ever as 's:' .. subject, never a pattern)
local user = false
if subject then  -- (the subject alone: a resume token never makes or moves an identity)
  user = redis.call('HGET', KEYS[2], 's:' .. subject)
elseif ARGV[3] ~= '' then
  user = redis.call('HGET', KEYS[2], 't:' .. ARGV[3])
end
local signed = user and redis.call('HEXISTS', KEYS[2], 'S:' .. user) == 1
if ARGV[1] == '' then  -- chatcore.control.refuse_join: a banned user, or a new user in a locked room
  if user then
    if redis.call('SISMEMBER', KEYS[3], user) == 1 then return -2 end
  elseif redis.call('HGET', KEYS[1], 'locked') then
    return -3
  end
end
if not subject and not signed and ARGV[5] ~= '' and redis.call('HEXISTS', KEYS[2], 'k:' .. ARGV[5]) == 1 then
  return -4
end
local resumed = 1
if not user then
  resumed = 0
  user = redis.call('HINCRBY', KEYS[1], 'users', 1)
  if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], 't:' .. ARGV[2], user) end
end
if subject then redis.call('HSET', KEYS[2], 's:' .. subject, user, 'S:' .. user, subject) end
local name = ARGV[4]
if name ~= '' and (subject or not signed) then  -- (a signed-in user's name comes with its subject only)
  redis.call('HSET', KEYS[2], 'n:' .. user, name)
else
  name = redis.call('HGET', KEYS[2], 'n:' .. user)
end
if subject and ARGV[5] ~= '' then hold(KEYS[2], user, ARGV[5]) end
return {tonumber(user), resumed, name, redis.call('HEXISTS', KEYS[2], 'S:' .. user)}
"""
"""KEYS: room, users, bans. ARGV: created time ('' to join an existing room), token hash to register for a new user,
token hash to resume, name, the name's key (each '' for none), then a signed-in user's subject (absent for none).
With a subject, the user is the subject's, else a new one (the resume token is not looked at); without, the resume
token's. The subject is bound to the user handed out, which holds the name's key. {user id, 1 if resumed else 0,
name or nil, 1 if the user is signed in (has a subject) else 0}; -1: key taken; 0: no room; refused (nothing done):
-2, the user is banned; -3, the room is locked to new users; -4, a join without subject, not a signed-in user's,
asks for a name a signed-in user holds."""

APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local seen = redis.call('ZRANGEBYSCORE', KEYS[4], ARGV[8], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #seen > 0 then
  if tonumber(seen[2]) == tonumber(ARGV[8]) then return tonumber(seen[1]) end
  return -1
end
local member = false
if ARGV[7] ~= '' then
  member = ARGV[3] .. ':' .. ARGV[7]
  local kept = redis.call('ZSCORE', KEYS[3], member)
  if kept then
    local entries = redis.call('XRANGE', KEYS[2], kept .. '-0', kept .. '-0')
    if #entries > 0 then return entries end
    local moved = redis.call('ZRANGEBYSCORE', KEYS[5], kept, kept)
    if #moved > 0 then return moved[1] end
  end
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local fields = {'u', ARGV[3], 't', ARGV[4], 'p', ARGV[5]}
if ARGV[6] ~= '' then
  fields[#fields + 1] = 'n'
  fields[#fields + 1] = ARGV[6]
end
if member then
  fields[#fields + 1] = 'i'
  fields[#fields + 1] = ARGV[7]
  redis.call('ZADD', KEYS[3], offset, member)
end
local signed = ''
if ARGV[11] then
  fields[#fields + 1] = 'v'
  fields[#fields + 1] = '1'
  signed = 'V\\n'
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], offset .. '-0', unpack(fields))
if offset > tonumber(ARGV[2]) then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', offset - tonumber(ARGV[2]))
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', offset - tonumber(ARGV[2]))
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[9])
redis.call('ZADD', KEYS[4], ARGV[8], offset)
redis.call('PEXPIRE', KEYS[4], ARGV[10])
redis.call('PUBLISH', ARGV[1], signed ..
  offset .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4] .. '\\n' .. ARGV[6] .. '\\n' .. ARGV[7] .. '\\n' .. ARGV[5])
return offset
"""
"""KEYS: room, talks, ids, the calling process's sent records, moved. ARGV: channel, retention, user id, time,
payload, name, talk id (each '' for none), request number, the lowest number the process still waits for an answer
to, how long its records outlive its last append (ms), then '1' if its sender is signed in (absent if not). The
talk's offset (also when this very request ran before:
its record); {the stream entry}, or its version in moved: the user's talk with that id, kept already (nothing
done); 0: no room; -1: a later request of the process ran before this one, which is a late copy of a request
answered already (nothing done).

A request asked again is never refused: the process puts the talks it has no answer for at the head of every
pipeline, in number order, and one connection's commands run in order; so no later number of the origin runs in the
room before it, and its record, once it ran, stays until the origin's floor passes it (it has the answer)."""

_NOW = """
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
"""

_WHO = """
local function who()
  local members = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
  local names, signed = {}, {}
  for i, member in ipairs(members) do
    local user = string.match(member, ':(%d+)$')
    names[i] = redis.call('HGET', KEYS[3], 'n:' .. user)
    signed[i] = redis.call('HEXISTS', KEYS[3], 'S:' .. user)
  end
  return {members, names, signed}
end
"""

_NEWS = """
local function news(origin, user, kind)
  local seq = redis.call('HINCRBY', KEYS[1], 'pseq', 1)
  local name = redis.call('HGET', KEYS[3], 'n:' .. user) or ''
  if kind ~= '0' and redis.call('HEXISTS', KEYS[3], 'S:' .. user) == 1 then kind = kind .. 'v' end
  redis.call('PUBLISH', ARGV[1], 'P\\n' .. seq .. '\\n' .. origin .. '\\n' .. user .. '\\n' .. kind .. '\\n' .. name)
  return seq
end
"""

LOAD = _NOW + _WHO + """
local room = redis.call('HMGET', KEYS[1], 'offset', 'pseq', 'cseq', 'title', 'locked')
if not room[1] then return false end
local talks, moved = {}, {}
if ARGV[1] ~= '0' then
  local last = tonumber(room[1])
  local low = math.max(last - tonumber(ARGV[1]) + 1, last - tonumber(ARGV[2]) + 1, 1)
  talks = redis.call('XRANGE', KEYS[4], low .. '-0', '+')
  moved = redis.call('ZRANGEBYSCORE', KEYS[7], low, '+inf')
end
return {room[1], talks, room[2] or '0', who(), {room[3] or '0', room[4] or '', room[5] or '0'},
        redis.call('SMEMBERS', KEYS[5]), redis.call('SMEMBERS', KEYS[6]), moved}
"""
"""KEYS: room, who, users, talks, mods, bans, moved. ARGV: how many recent talks, retention. False: no room; else
{the last offset, the recent talks' stream entries, pseq, {{the live who members}, {their users' names}, {1 for each
signed in, else 0}}, {cseq,
title, locked}, {moderators}, {banned}, the recent moved talks}."""

RENAME = _NEWS + _HOLD + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[5] ~= '' then
  if redis.call('HEXISTS', KEYS[3], 'S:' .. ARGV[3]) == 1 then
    hold(KEYS[3], ARGV[3], ARGV[5])
  elseif redis.call('HEXISTS', KEYS[3], 'k:' .. ARGV[5]) == 1 then
    return -1
  end
end
redis.call('HSET', KEYS[3], 'n:' .. ARGV[3], ARGV[4])
return news(ARGV[2], ARGV[3], 'r')
"""
"""KEYS: room, who (unused), users. ARGV: channel, origin, user id, name, the name's key ('' for none). The news'
pseq; 0: no room; -1: the user is not signed in and a signed-in user holds the name's key (nothing done)."""

PRESENCE = _NOW + _NEWS + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local member = ARGV[2] .. ':' .. ARGV[3]
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), member)
elseif redis.call('ZREM', KEYS[2], member) == 0 then
  return 0
end
return news(ARGV[2], ARGV[3], ARGV[4])
"""
"""KEYS: room, who, users. ARGV: channel, origin, user id, 1 (came) or 0 (left), ttl in ms. The news' pseq; 0: no
room, or a user who left and was not listed (nothing published)."""

REFRESH = _NOW + _WHO + _NEWS + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
for i = 4, #ARGV do
  if redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2] .. ':' .. ARGV[i]) == 1 then
    news(ARGV[2], ARGV[i], '1')
  end
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, member in ipairs(dead) do
  redis.call('ZREM', KEYS[2], member)
  local origin, user = string.match(member, '^(.*):(%d+)$')
  news(origin, user, '0')
end
return {redis.call('HGET', KEYS[1], 'pseq') or '0', who()}
"""
"""KEYS: room, who, users. ARGV: channel, origin, ttl in ms, then the user ids this origin has in the room.
Renews their entries (one that was missing is news: 1), removes every expired one (news: 0). False: no room; else
{pseq, {{the live who members}, {their users' names}, {1 for each signed in, else 0}}}."""

HISTORY = FIRST + """
local last = redis.call('HGET', KEYS[1], 'offset')
if not last then return false end
local high = math.min(tonumber(ARGV[1]), tonumber(last))
local first = first_kept(KEYS[2], KEYS[3], math.max(1, tonumber(last) - tonumber(ARGV[3]) + 1))
if not first or high < first then return {{}, {}, 0} end
local low = math.max(high - tonumber(ARGV[2]) + 1, first)
local older = 0
if low > first then older = 1 end
return {redis.call('XRANGE', KEYS[2], low .. '-0', high .. '-0'), redis.call('ZRANGEBYSCORE', KEYS[3], low, high),
        older}
"""
"""KEYS: room, talks, moved. ARGV: the highest offset to read, how many, retention. False: no room; else {the
stream's entries and the moved talks of the offsets read, 1 if the room has talks before them else 0}."""

SCRIPTS = {name: (source, hashlib.sha1(source.encode()).hexdigest()) for name, source in (
    ("add_user", ADD_USER), ("append", APPEND), ("load", LOAD), ("rename", RENAME), ("presence", PRESENCE),
    ("refresh", REFRESH), ("history", HISTORY), ("control", CONTROL), ("change", CHANGE), ("end_quiet", END_QUIET),
    ("age", AGE), ("trim", TRIM), ("fill", FILL),
)}


def room_key(join_key: str) -> str:
    return f"chat:{{{join_key}}}:room"


def talks_key(join_key: str) -> str:
    return f"chat:{{{join_key}}}:talks"


def users_key(join_key: str) -> str:
    return f"chat:{{{join_key}}}:users"


def ids_key(join_key: str) -> str:
    return f"chat:{{{join_key}}}:ids"


def sent_key(join_key: str, origin: str) -> str:
    return f"chat:{{{join_key}}}:sent:{origin}"


def who_key(join_key: str) -> str:
    return f"chat:{{{join_key}}}:who"


def moved_key(join_key: str) -> str:
    return f"chat:{{{join_key}}}:moved"


def mods_key(join_key: str) -> str:
    return f"chat:{{{join_key}}}:mods"


def bans_key(join_key: str) -> str:
    return f"chat:{{{join_key}}}:bans"


def changes_key(join_key: str) -> str:
    return f"chat:{{{join_key}}}:changes"


def ended_key(join_key: str) -> str:
    return f"chat:{{{join_key}}}:ended"


def room_keys(join_key: str, origin: str) -> tuple[str, ...]:
    """Every key of a room, in the order the scripts that change or end it take them (`redischanges`); of the
    processes' sent records, the calling one's (``origin``)."""
    return (
        room_key(join_key), mods_key(join_key), bans_key(join_key), talks_key(join_key), moved_key(join_key),
        changes_key(join_key), users_key(join_key), ids_key(join_key), who_key(join_key), ended_key(join_key),
        sent_key(join_key, origin),
    )


def channel(join_key: str) -> bytes:
    return f"chat:{{{join_key}}}:live".encode()


def join_key_of(channel_name: bytes) -> str:
    return channel_name[6:-6].decode()  # chat:{ ... }:live


def typing_news(origin: str, user_id: int) -> bytes:
    """What a `chatcore.actions.Typing` publishes on its room's channel."""
    return f"T\n{origin}\n{user_id}".encode()


def published(join_key: str, data: bytes) -> LoggedTalk | PresenceHeard | TypingHeard | LoggedChange | Expired:
    """What a message on a room's channel says (`ValueError` if it is not one of ours)."""
    if data.startswith((b"C\n", b"X\n")):
        return published_change(join_key, data)
    if data.startswith(b"T\n"):
        _, origin, user_id = data.split(b"\n", 2)
        return TypingHeard(join_key, origin.decode(), int(user_id))
    if data.startswith(b"P\n"):
        _, seq, origin, user_id, kind, name = data.split(b"\n", 5)
        signed = kind.endswith(b"v")
        if signed:
            kind = kind[:-1]
        if kind not in _KINDS:
            raise ValueError(f"no such presence news: {kind!r}")
        here = _KINDS[kind]
        return PresenceHeard(join_key, int(seq), origin.decode(), int(user_id), here, name.decode() or None, signed)
    signed = data.startswith(b"V\n")
    offset, user_id, sent, name, talk_id, payload = (data[2:] if signed else data).split(b"\n", 5)
    return LoggedTalk(
        join_key, int(offset), int(user_id), float(sent), payload.decode(), name.decode() or None,
        talk_id.decode() or None, verified=signed,
    )


_KINDS: dict[bytes, bool | None] = {b"1": True, b"0": False, b"r": None}
