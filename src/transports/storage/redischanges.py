"""Changes of a room in Redis (`chatcore.control`): the scripts that read and apply them, and how they are written.

Pure: the formats and the Lua sources, no connection (`redismoderation` runs them, `redisscheme` has the keys).
A change is judged in Python (`chatcore.control.judge`, on the storage thread) against the room's state read by
`CONTROL`, and applied by `CHANGE` only if the room's change number (``cseq``) is still the one read: the rules
live in one place, and two processes' changes of one room never cross.

What is written where:

- an edited or deleted talk leaves the stream, and its current version goes to the room's ``moved`` sorted set,
  scored by its offset, as ``"<offset>\\n" + version``: ``e\\n<user>\\n<time>\\n<edited>\\n<name>\\n<talk
  id>\\n<payload>`` (``edited`` empty: never) or ``d\\n<user>\\n<time>\\n<talk id>`` (deleted: no text, no name).
  Redis only flags an entry XDEL removes, and keeps its bytes until every entry of its node (at most
  ``stream-node-max-entries``, ``EVICT_WINDOW``) is gone: so the talks around it move too (`_EVICT`), and the
  node with the erased text is freed. Retention's XTRIM does the same around its first talk kept;
- the ``changes`` stream: one entry per change, id ``<seq>-0``, fields k (kind), b (by), t (time), a (after),
  and o (an edit's or delete's offset: never a talk's text), v (a title; none: cleared), l (locked 1/0), u and x
  (a removed user and ban 1/0, a user and moderator 1/0);
- on the room's channel: ``C\\n<seq>\\n<after>\\n<by>\\n<time>\\n<kind>`` and the kind's fields (an edit carries
  the talk's new version, text included: a channel keeps nothing), and ``X\\n<first>`` when retention erased the
  talks before offset ``first``;
- an end leaves ``ended``, its channel message, for a day (a process that missed it hears of it when it fills).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatcore.control import Change, Delete, Edit, End, Lock, Remove, RoomControl, SetRole, Title
from chatcore.results import Expired, LoggedChange, LoggedTalk

CHANGE_ATTEMPTS = 5
"""How many times a change is read and judged again when another one of its room got in first."""
EVICT_WINDOW = 100
"""Redis's ``stream-node-max-entries`` by default: a stream node holds at most that many entries, so those of the
offsets within this distance of a talk's take its node with them (`RedisLog.open` reads the setting if it may)."""

# Every room's key, in this order (`redisscheme.room_keys`), in the scripts that end a room or take talks out of
# its stream (of the processes' records of the talks they stored, the caller's: the others hold no text and
# expire within a day).
_EVICT = """
local function evict(low, high, floor)
  for _, entry in ipairs(redis.call('XRANGE', KEYS[4], low .. '-0', high .. '-0')) do
    local offset = tonumber(string.match(entry[1], '^%d+'))
    if offset >= floor then
      local fields, f = entry[2], {}
      for j = 1, #fields, 2 do f[fields[j]] = fields[j + 1] end
      redis.call('ZADD', KEYS[5], offset, offset .. '\\ne\\n' .. f.u .. '\\n' .. f.t .. '\\n\\n' .. (f.n or '') .. '\\n'
        .. (f.i or '') .. '\\n' .. f.p)
    end
    redis.call('XDEL', KEYS[4], entry[1])
  end
end
"""
"""Take the talks of offsets ``low`` to ``high`` out of the stream: into ``moved`` those from ``floor`` on (the others
are out of the retention window: gone)."""

FIRST = """
local function first_kept(talks, moved, floor)
  local first = false
  local head = redis.call('XRANGE', talks, floor .. '-0', '+', 'COUNT', 1)
  if #head > 0 then first = tonumber(string.match(head[1][1], '^%d+')) end
  local out = redis.call('ZRANGEBYSCORE', moved, floor, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #out > 0 and (not first or tonumber(out[2]) < first) then first = tonumber(out[2]) end
  return first
end
"""
"""The offset of a room's first talk from ``floor`` on (the retention window's start), in its stream or moved; false
if none."""

_END = """
local function ended(message)
  redis.call('DEL', unpack(KEYS, 1, 9))
  redis.call('DEL', KEYS[11])
  redis.call('SET', KEYS[10], message, 'PX', ARGV[7])
  redis.call('PUBLISH', ARGV[1], message)
end
"""

CONTROL = """
local room = redis.call('HMGET', KEYS[1], 'users', 'offset', 'cseq', 'title', 'locked')
if not room[1] then return false end
local talk = false
local offset, last = tonumber(ARGV[1]), tonumber(room[2])
if offset > 0 and offset <= last and offset > last - tonumber(ARGV[2]) then
  local entries = redis.call('XRANGE', KEYS[4], offset .. '-0', offset .. '-0')
  if #entries > 0 then
    talk = entries[1]
  else
    local moved = redis.call('ZRANGEBYSCORE', KEYS[5], offset, offset)
    if #moved > 0 then talk = moved[1] end
  end
end
return {room, redis.call('SMEMBERS', KEYS[2]), redis.call('SMEMBERS', KEYS[3]), talk}
"""
"""KEYS: room, mods, bans, talks, moved. ARGV: the offset of the talk an edit or delete names (0: none),
retention. False: no room; else {{last user id, last offset, cseq, title, locked}, {moderators}, {banned}, the
talk (its stream entry, or its version in ``moved``; false: none in the room's last ``retention`` offsets)}."""

CHANGE = _EVICT + _END + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if (redis.call('HGET', KEYS[1], 'cseq') or '0') ~= ARGV[2] then return -1 end
local offset = ARGV[4]
if offset ~= '' and #redis.call('XRANGE', KEYS[4], offset .. '-0', offset .. '-0') == 0
    and redis.call('ZCOUNT', KEYS[5], offset, offset) == 0 then
  return -1
end
local seq = tonumber(ARGV[2]) + 1
local after = redis.call('HGET', KEYS[1], 'offset')
local message = 'C\\n' .. seq .. '\\n' .. after .. '\\n' .. ARGV[6]
if ARGV[8] == 'end' then
  ended(message)
  return {seq, tonumber(after)}
end
redis.call('HSET', KEYS[1], 'cseq', seq)
local i = 10
while ARGV[i] ~= '|' do
  local op, value = ARGV[i], ARGV[i + 1]
  if op == 'title' and value == '' then redis.call('HDEL', KEYS[1], 'title')
  elseif op == 'title' then redis.call('HSET', KEYS[1], 'title', value)
  elseif op == 'locked' and value == '1' then redis.call('HSET', KEYS[1], 'locked', 1)
  elseif op == 'locked' then redis.call('HDEL', KEYS[1], 'locked')
  elseif op == 'mod+' then redis.call('SADD', KEYS[2], value)
  elseif op == 'mod-' then redis.call('SREM', KEYS[2], value)
  elseif op == 'ban+' then redis.call('SADD', KEYS[3], value)
  elseif op == 'ban-' then redis.call('SREM', KEYS[3], value)
  end
  i = i + 2
end
if offset ~= '' then
  local window = tonumber(ARGV[9])
  evict(math.max(1, offset - window + 1), offset + window - 1, tonumber(after) - tonumber(ARGV[3]) + 1)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], offset, offset)
  redis.call('ZADD', KEYS[5], offset, offset .. '\\n' .. ARGV[5])
end
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'a', after, unpack(ARGV, i + 1))
redis.call('PUBLISH', ARGV[1], message)
return {seq, tonumber(after)}
"""
"""KEYS: the room's keys (`redisscheme.room_keys`). ARGV: channel, the cseq the change was judged against,
retention (the changes stream's length, about), the offset of the talk it changes ('' none), that talk's version
after it, the channel message after its seq and after, the end's record's life (ms), 'end' for an end ('' else),
`EVICT_WINDOW`, then the state's updates (op, value pairs: title '' clears it; locked 1/0; mod+, mod-, ban+,
ban- a user), '|', and the changes stream's fields. {seq, after}; 0: no room; -1: another change (or retention) got
in first: read and judge again."""

END_QUIET = _END + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'offset') ~= ARGV[2] then return -1 end
local seq = tonumber(redis.call('HGET', KEYS[1], 'cseq') or '0') + 1
ended('C\\n' .. seq .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[3])
return seq
"""
"""Retention ends a room with no talk since its time: KEYS: the room's keys. ARGV: channel, the room's last offset
as read (a talk since: nothing done, -1), the message after seq and after (``0\\n<before>\\nend``), -, -, -, the
end's record's life (ms). The end's seq; 0: no room."""

AGE = """
local room = redis.call('HMGET', KEYS[1], 'offset', 'created')
if not room[1] then return false end
local newest = false
if room[1] ~= '0' then
  local entries = redis.call('XRANGE', KEYS[2], room[1] .. '-0', room[1] .. '-0')
  if #entries > 0 then
    newest = entries[1]
  else
    local moved = redis.call('ZRANGEBYSCORE', KEYS[3], room[1], room[1])
    if #moved > 0 then newest = moved[1] end
  end
end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local moved = redis.call('ZRANGE', KEYS[3], 0, 0)
return {room, newest, first[1] or false, moved[1] or false}
"""
"""KEYS: room, talks, moved. False: no room; else {{last offset, created}, the newest talk, the stream's first
entry, the first moved talk (each false if none)}."""

TRIM = _EVICT + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local keep = tonumber(ARGV[2])
redis.call('XTRIM', KEYS[4], 'MINID', keep .. '-0')
local floor = tonumber(redis.call('HGET', KEYS[1], 'offset')) - tonumber(ARGV[4]) + 1
evict(keep, keep + tonumber(ARGV[3]) - 1, math.max(keep, floor))
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. keep)
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', '(' .. keep)
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'first', keep)
  redis.call('PUBLISH', ARGV[1], 'X\\n' .. keep)
end
return 1
"""
"""Retention erases the talks before an offset: KEYS: the room's keys. ARGV: channel, the first offset kept,
`EVICT_WINDOW`, retention, '1' if talks of the retention window go (news: published, and kept in the room's
``first``), else '0' (only talks lingering in the stream beyond it). 1; 0: no room."""

FILL = """
local last = redis.call('HGET', KEYS[1], 'offset')
if not last then return redis.call('GET', KEYS[5]) end
local floor = math.max(1, tonumber(last) - tonumber(ARGV[3]) + 1)
local low = math.max(tonumber(ARGV[1]) + 1, floor)
local changes = redis.call('XRANGE', KEYS[4], (tonumber(ARGV[2]) + 1) .. '-0', '+')
local versions = {}
for i, entry in ipairs(changes) do
  local fields = entry[2]
  versions[i] = ''
  for j = 1, #fields, 2 do
    if fields[j] == 'o' then
      local current = redis.call('ZRANGEBYSCORE', KEYS[3], fields[j + 1], fields[j + 1])
      if #current > 0 then versions[i] = current[1] end
    end
  end
end
return {redis.call('XRANGE', KEYS[2], low .. '-0', '+'), redis.call('ZRANGEBYSCORE', KEYS[3], low, '+inf'),
        changes, versions, redis.call('HGET', KEYS[1], 'first') or 0}
"""
"""KEYS: room, talks, moved, changes, ended. ARGV: the offset after which to read talks, the seq after which to
read changes, retention. No room: the end's message if it ended lately (else nil); else {the stream's entries, the
moved talks (both from the later of after + 1 and the retention window's start), the changes, for each the
current version of the talk it names ('' none), the first talk retention kept (0: it erased none)}."""


# Talks

def stream_talk(join_key: str, entry: Any) -> LoggedTalk:
    """A talk as its stream entry has it: as it was sent."""
    entry_id, fields = entry
    values = dict(zip(fields[::2], fields[1::2], strict=True)) if isinstance(fields, list) else fields
    offset = int(entry_id.split(b"-", 1)[0])
    return LoggedTalk(
        join_key, offset, int(values[b"u"]), float(values[b"t"]), values[b"p"].decode(), _text(values.get(b"n")),
        _text(values.get(b"i")), verified=b"v" in values,
    )


def version(talk: LoggedTalk) -> str:
    """A talk as ``moved`` keeps it (after its offset) and an edit's or delete's message carries it."""
    talk_id = talk.talk_id or ""
    if talk.payload is None:
        return f"d\n{talk.user_id}\n{talk.time!r}\n{talk_id}"
    edited = "" if talk.edited is None else repr(talk.edited)
    kind = "E" if talk.verified else "e"  # (E: its sender was signed in)
    return f"{kind}\n{talk.user_id}\n{talk.time!r}\n{edited}\n{talk.name or ''}\n{talk_id}\n{talk.payload}"


def versioned_talk(join_key: str, offset: int, data: bytes) -> LoggedTalk:
    """The talk a `version` describes (`ValueError` if it is not one)."""
    kind, _, rest = data.partition(b"\n")
    if kind == b"d":
        user_id, sent, talk_id = rest.split(b"\n", 2)
        return LoggedTalk(join_key, offset, int(user_id), float(sent), None, None, talk_id.decode() or None)
    if kind not in (b"e", b"E"):
        raise ValueError(f"no such talk version: {kind!r}")
    user_id, sent, edited, name, talk_id, payload = rest.split(b"\n", 5)
    return LoggedTalk(
        join_key, offset, int(user_id), float(sent), payload.decode(), name.decode() or None, talk_id.decode() or None,
        float(edited) if edited else None, kind == b"E",
    )


def moved_talk(join_key: str, member: bytes) -> LoggedTalk:
    """A member of ``moved``: ``"<offset>\\n" + version``."""
    offset, _, data = member.partition(b"\n")
    return versioned_talk(join_key, int(offset), data)


def kept_talk(join_key: str, reply: Any) -> LoggedTalk:
    """A talk a script found: its stream entry (a list) or its version in ``moved`` (bytes)."""
    return moved_talk(join_key, reply) if isinstance(reply, bytes) else stream_talk(join_key, reply)


def talks_now(join_key: str, entries: Sequence[Any], moved: Sequence[bytes]) -> tuple[LoggedTalk, ...]:
    """Talks as they are now, oldest first: the stream's entries and the moved talks of the same range merged."""
    talks = {talk.offset: talk for talk in (stream_talk(join_key, entry) for entry in entries)}
    for member in moved:
        talk = moved_talk(join_key, member)
        talks[talk.offset] = talk
    return tuple(talks[offset] for offset in sorted(talks))


# The room's control state

def control_of(room: Sequence[Any], moderators: Sequence[bytes], banned: Sequence[bytes]) -> RoomControl:
    """A room's `RoomControl` from its hash's cseq, title and locked, and its ``mods`` and ``bans`` sets."""
    seq, title, locked = room
    return RoomControl(
        _text(title) or None, locked == b"1", frozenset(int(user) for user in moderators),
        frozenset(int(user) for user in banned), int(seq or 0),
    )


def updates(before: RoomControl, after: RoomControl) -> list[str]:
    """What `CHANGE` sets to turn the state ``before`` into ``after``: (op, value) pairs, flat."""
    ops: list[str] = []
    if after.title != before.title:
        ops += ["title", after.title or ""]
    if after.locked != before.locked:
        ops += ["locked", "1" if after.locked else "0"]
    for op, users in (("mod+", after.moderators - before.moderators), ("mod-", before.moderators - after.moderators),
                      ("ban+", after.banned - before.banned), ("ban-", before.banned - after.banned)):
        for user in sorted(users):
            ops += [op, str(user)]
    return ops


# Changes: in the changes stream (no talk text), and on the channel

def stream_fields(by: int, time: float, change: Change) -> list[str]:
    """A change's fields in the room's changes stream (its seq is the entry's id; ``a`` is added by `CHANGE`)."""
    fields = ["k", change.kind, "b", str(by), "t", repr(time)]
    if isinstance(change, Edit | Delete):
        fields += ["o", str(change.offset)]
    elif isinstance(change, Title):
        fields += ["v", change.title] if change.title is not None else []
    elif isinstance(change, Lock):
        fields += ["l", str(int(change.locked))]
    elif isinstance(change, Remove):
        fields += ["u", str(change.user_id), "x", str(int(change.ban))]
    elif isinstance(change, SetRole):
        fields += ["u", str(change.user_id), "x", str(int(change.moderator))]
    return fields


def stored_change(join_key: str, entry: Any, current: bytes) -> LoggedChange:
    """A change as its entry in the changes stream has it, an edit's or a delete's talk as it is now (``current``: its
    version, b'' if the log no longer has it). An edit of a talk deleted since, or no longer kept, is read as a
    delete: its text is gone."""
    entry_id, fields = entry
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    seq, after = int(entry_id.split(b"-", 1)[0]), int(values[b"a"])
    by, time, kind = int(values[b"b"]), float(values[b"t"]), values[b"k"]
    talk: LoggedTalk | None = None
    change: Change
    if kind in (b"edit", b"delete"):
        offset = int(values[b"o"])
        talk = moved_talk(join_key, current) if current else None
        change = Edit(offset, talk.payload) if kind == b"edit" and talk and talk.payload is not None else Delete(offset)
    elif kind == b"room":
        change = Title(_text(values.get(b"v")))
    elif kind == b"lock":
        change = Lock(values[b"l"] == b"1")
    elif kind == b"remove":
        change = Remove(int(values[b"u"]), values[b"x"] == b"1")
    elif kind == b"role":
        change = SetRole(int(values[b"u"]), values[b"x"] == b"1")
    else:
        raise ValueError(f"no such change: {kind!r}")
    return LoggedChange(join_key, seq, after, by, time, change, talk)


def message_tail(by: int, time: float, change: Change, talk: LoggedTalk | None) -> str:
    """A change's channel message after ``C\\n<seq>\\n<after>\\n`` (which `CHANGE` writes): an edit's or a delete's
    ``talk`` as it is after it."""
    tail = f"{by}\n{time!r}\n{change.kind}"
    if isinstance(change, Edit | Delete):
        assert talk is not None
        return f"{tail}\n{change.offset}\n{version(talk)}"
    if isinstance(change, Title):
        return f"{tail}\n{change.title or ''}"
    if isinstance(change, Lock):
        return f"{tail}\n{int(change.locked)}"
    if isinstance(change, Remove):
        return f"{tail}\n{change.user_id}\n{int(change.ban)}"
    if isinstance(change, SetRole):
        return f"{tail}\n{change.user_id}\n{int(change.moderator)}"
    return tail


def published_change(join_key: str, data: bytes) -> LoggedChange | Expired:
    """A change (``C``) or retention's news (``X``) from a room's channel, or an end's record (`ValueError` if it is
    not one of ours)."""
    if data.startswith(b"X\n"):
        return Expired(join_key, int(data[2:]))
    if not data.startswith(b"C\n"):
        raise ValueError("not a change")
    _, seq, after, by, time, rest = data.split(b"\n", 5)
    kind, _, fields = rest.partition(b"\n")
    talk: LoggedTalk | None = None
    change: Change
    if kind in (b"edit", b"delete"):
        offset, _, data = fields.partition(b"\n")
        talk = versioned_talk(join_key, int(offset), data)
        change = Delete(talk.offset) if kind == b"delete" else Edit(talk.offset, talk.payload or "")
        if (talk.payload is None) != (kind == b"delete"):
            raise ValueError(f"a {kind!r} with the talk {talk!r}")
    elif kind == b"room":
        change = Title(fields.decode() or None)
    elif kind == b"lock":
        change = Lock(_flag(fields))
    elif kind in (b"remove", b"role"):
        user_id, flag = fields.split(b"\n")
        change = Remove(int(user_id), _flag(flag)) if kind == b"remove" else SetRole(int(user_id), _flag(flag))
    elif kind == b"end" and not fields:
        change = End()
    else:
        raise ValueError(f"no such change: {kind!r}")
    return LoggedChange(join_key, int(seq), int(after), int(by), float(time), change, talk)


def _flag(value: bytes) -> bool:
    if value not in (b"0", b"1"):
        raise ValueError(f"not a flag: {value!r}")
    return value == b"1"


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()
