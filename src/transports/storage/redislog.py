"""The room log in Redis, shared by every chat-server process started with the same ``--redis``.

Keys (each room's carry its join key as a hash tag, so a Redis Cluster keeps a room on one node):

    chat:{KEY}:room   hash: created, users (the last user id handed out), offset (the last talk's),
                      pseq (the number of the room's latest presence news)
    chat:{KEY}:talks  stream: one entry per talk, id "<offset>-0", fields u (user id), t (time),
                      p (payload), n (the sender's name) and i (its talk id) when it has them;
                      trimmed to about ``retention`` entries (XADD MAXLEN ~)
    chat:{KEY}:users  hash: "n:<user id>" → the user's name, "t:<token hash>" → the user id
                      (version 2: a resume token's SHA-256, never the token)
    chat:{KEY}:ids    sorted set: "<user id>:<talk id>" scored by the talk's offset, trimmed to the
                      last ``retention`` offsets: one talk per user and id while the stream keeps it
    chat:{KEY}:sent:<origin>
                      sorted set: the offset of each talk the process ``origin`` stored, scored by
                      its request number, kept until that process has the answer (and its latest
                      few), the key gone a day after its last talk (`SENT_TTL_MS`): a request sent
                      again is answered as the first time, a late copy of one answered already
                      stores nothing
    chat:{KEY}:who    sorted set: "<origin>:<user id>" for each user with a connection to the room
                      on the process ``origin``, scored by when it expires (ms, Redis's clock): each
                      process renews its own every ttl/3 seconds, so a dead one's expire
    chat:{KEY}:live   channel, in offset and presence order (each published by the script that
                      makes the change):
                      a talk     "<offset>\\n<user id>\\n<time>\\n<name>\\n<talk id>\\n<payload>"
                      presence   "P\\n<pseq>\\n<origin>\\n<user id>\\n<1|0|r>\\n<name>"
                                 (1: came, 0: left, r: renamed; an empty name or talk id is none)
    chat:epoch        a random value, set once: a Redis that comes back without its data has another

Three parts, each on its own thread of control:

- `RedisLog` runs on the storage thread (`StorageWorker`): the core's requests
  in batches, one pipeline per batch, each one script (`ADD_USER`, `APPEND`,
  `LOAD`, `RENAME`, `HISTORY`; presence: `PRESENCE`, `REFRESH`); fills
  (XRANGE); subscriptions, sent on the subscriber's connection and waited
  for before anything after them runs; and the epoch, checked at the head of
  every batch.
- `Subscriber` has a thread and a connection of its own for the channels. It
  reconnects with backoff, subscribes again to every room still wanted
  (each confirmation makes the room's `RoomFeed` read back what it may have
  missed, and the room's presence be read again), pings when the connection
  is quiet, and hands what it hears to the event loop in bursts, without
  this process's own presence news.
- `RedisBroker`, on the event loop, is the core's room-log backend: it takes
  the core's log actions (`submit`; a `Subscribe` is waited for, on the
  storage thread, before anything asked after it runs) and hands every
  result and every piece of news back (`run`'s ``deliver``). It keeps the
  users each room has here, and renews their presence every
  ``presence_ttl / 3`` seconds (`REFRESH`, which also removes what dead
  processes left and answers with who is in the room: a `PresenceSnapshot`).

While Redis is unreachable every request fails within the timeout (then at
once, for a second, before the next try) with "storage unreachable", which
the core turns into an error event for the client; connections stay open.
But a talk is reported not stored only when it certainly was not and never
will be: one whose request may have reached Redis (sent, no answer read) is
asked again, under the same request number, at the head of every later
batch (`AskAgain` makes one while the rooms are quiet) until Redis answers;
the script stores it once however many copies arrive, in whatever order.
Its answer then comes after answers to later requests.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeGuard
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import anyio.abc
import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.retry import Retry

import chatcore
from chatcore import (
    AddUser,
    Append,
    Appended,
    Fill,
    Forget,
    History,
    HistoryRead,
    KeyTaken,
    Load,
    Loaded,
    LogAction,
    LogFailed,
    LoggedTalk,
    LogLost,
    LogRequest,
    LogResult,
    NameSaved,
    Presence,
    PresenceHeard,
    PresenceSnapshot,
    Rename,
    SavedRoom,
    Subscribe,
    Subscribed,
    TalkArrived,
    UserAdded,
)

from ..config import RedisSettings
from ..logs import room_hash
from .loopcall import LoopCall, loop_call
from .worker import StorageWorker

log = logging.getLogger(__name__)

EPOCH_KEY = "chat:epoch"
UNREACHABLE = "storage unreachable"
INCONSISTENT = "storage inconsistent"
RETRY_AFTER_FAILURE = 1.0
"""Seconds after a failed batch during which requests fail at once instead of waiting for Redis again."""
REFILL_DELAY = 0.5
"""Seconds before a fill that failed (Redis unreachable) is tried again."""
KEEPALIVE = 5.0
"""Seconds of silence on the subscriber's connection before it pings Redis to find out whether it is alive."""
STEADY_CONNECTION = 5.0
"""Seconds a subscriber's connection must have lasted for its next reconnect to start at the shortest pause."""
SENT_TTL_MS = 24 * 3600 * 1000
"""How long a process's records of the talks it stored in a room outlive its last talk there (a process gone, or one
that cannot reach Redis for that long, leaves nothing behind)."""
MAX_BURST = 512
"""Most messages the subscriber reads before it hands them to the event loop (which takes them all in one go)."""

# Every script that writes checks the room first: a room Redis does not have (lost with its data) is never
# brought back piecemeal. Times in presence are Redis's (TIME, in ms): one clock for every host.

ADD_USER = """
if ARGV[1] ~= '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
  redis.call('HSET', KEYS[1], 'created', ARGV[1], 'users', 0, 'offset', 0, 'pseq', 0)
elseif redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local user = false
if ARGV[3] ~= '' then user = redis.call('HGET', KEYS[2], 't:' .. ARGV[3]) end
local resumed = 1
if not user then
  resumed = 0
  user = redis.call('HINCRBY', KEYS[1], 'users', 1)
  if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], 't:' .. ARGV[2], user) end
end
local name = ARGV[4]
if name ~= '' then
  redis.call('HSET', KEYS[2], 'n:' .. user, name)
else
  name = redis.call('HGET', KEYS[2], 'n:' .. user)
end
return {tonumber(user), resumed, name}
"""
"""KEYS: room, users. ARGV: created time ('' to join an existing room), token hash to register for a new user,
token hash to resume, name (each '' for none). {user id, 1 if resumed else 0, name or nil}; -1: key taken;
0: no room."""

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
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], offset .. '-0', unpack(fields))
if offset > tonumber(ARGV[2]) then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', offset - tonumber(ARGV[2]))
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[9])
redis.call('ZADD', KEYS[4], ARGV[8], offset)
redis.call('PEXPIRE', KEYS[4], ARGV[10])
redis.call('PUBLISH', ARGV[1],
  offset .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4] .. '\\n' .. ARGV[6] .. '\\n' .. ARGV[7] .. '\\n' .. ARGV[5])
return offset
"""
"""KEYS: room, talks, ids, the calling process's sent records. ARGV: channel, retention, user id, time, payload,
name, talk id (each '' for none), request number, the lowest number the process still waits for an answer to, how
long its records outlive its last append (ms). The talk's offset (also when this very request ran before: its
record); {the stream entry}: the user's talk with that id, kept already (nothing done); 0: no room; -1: a later
request of the process ran before this one, which is a late copy of a request answered already (nothing done).

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
  local names = {}
  for i, member in ipairs(members) do
    names[i] = redis.call('HGET', KEYS[3], 'n:' .. string.match(member, ':(%d+)$'))
  end
  return {members, names}
end
"""

_NEWS = """
local function news(origin, user, kind)
  local seq = redis.call('HINCRBY', KEYS[1], 'pseq', 1)
  local name = redis.call('HGET', KEYS[3], 'n:' .. user) or ''
  redis.call('PUBLISH', ARGV[1], 'P\\n' .. seq .. '\\n' .. origin .. '\\n' .. user .. '\\n' .. kind .. '\\n' .. name)
  return seq
end
"""

LOAD = _NOW + _WHO + """
local room = redis.call('HMGET', KEYS[1], 'offset', 'pseq')
if not room[1] then return false end
local talks = {}
if ARGV[1] ~= '0' then talks = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', ARGV[1]) end
return {room[1], talks, room[2] or '0', who()}
"""
"""KEYS: room, who, users, talks. ARGV: how many recent talks. False: no room; else {the last offset, the talks
newest first, pseq, {{the live who members}, {their users' names}}}."""

RENAME = _NEWS + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[3], 'n:' .. ARGV[3], ARGV[4])
return news(ARGV[2], ARGV[3], 'r')
"""
"""KEYS: room, who (unused), users. ARGV: channel, origin, user id, name. The news' pseq; 0: no room."""

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
{pseq, {{the live who members}, {their users' names}}}."""

HISTORY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] == '0' then return {{}, 0} end
local talks = redis.call('XREVRANGE', KEYS[2], ARGV[1], '-', 'COUNT', ARGV[2])
local older = 0
if #talks > 0 then
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if first[1][1] ~= talks[#talks][1] then older = 1 end
end
return {talks, older}
"""
"""KEYS: room, talks. ARGV: the highest offset to read, how many. False: no room; else {the talks newest first, 1
if the stream has talks before the last of them else 0}."""

SCRIPTS = {name: (source, hashlib.sha1(source.encode()).hexdigest()) for name, source in (
    ("add_user", ADD_USER), ("append", APPEND), ("load", LOAD), ("rename", RENAME), ("presence", PRESENCE),
    ("refresh", REFRESH), ("history", HISTORY),
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


def channel(join_key: str) -> bytes:
    return f"chat:{{{join_key}}}:live".encode()


def join_key_of(channel_name: bytes) -> str:
    return channel_name[6:-6].decode()  # chat:{ ... }:live


def published(join_key: str, data: bytes) -> LoggedTalk | PresenceHeard:
    """What a message on a room's channel says (`ValueError` if it is not one of ours)."""
    if data.startswith(b"P\n"):
        _, seq, origin, user_id, kind, name = data.split(b"\n", 5)
        if kind not in _KINDS:
            raise ValueError(f"no such presence news: {kind!r}")
        here = _KINDS[kind]
        return PresenceHeard(join_key, int(seq), origin.decode(), int(user_id), here, name.decode() or None)
    offset, user_id, sent, name, talk_id, payload = data.split(b"\n", 5)
    return LoggedTalk(
        join_key, int(offset), int(user_id), float(sent), payload.decode(), name.decode() or None,
        talk_id.decode() or None,
    )


_KINDS: dict[bytes, bool | None] = {b"1": True, b"0": False, b"r": None}


def redacted(url: str) -> str:
    """The URL as logs may show it: without its password (``user:password@``, or ``?password=`` for unix://)."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    query = [(name, "***" if name == "password" else value) for name, value in parse_qsl(parts.query)]
    text = urlunsplit(parts._replace(query=urlencode(query, safe="*")))
    return text.replace(":", "://", 1) if not parts.netloc else text  # (unix:///path loses its // otherwise)


# What goes to the storage thread besides the core's requests, and what comes back besides their results.

@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Stop listening to the room's channel."""

    join_key: str


@dataclass(frozen=True, slots=True)
class Refresh:
    """Renew the presence of this process's users in the room, drop what expired, and read who is in it."""

    join_key: str
    user_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AskAgain:
    """Ask Redis again about the talks it was sent and has not answered (a batch of its own while rooms are quiet)."""


@dataclass(frozen=True, slots=True)
class Filled:
    """The answer to a `Fill`: the room's talks after ``fill.after`` that its stream still has, oldest first."""

    fill: Fill
    talks: list[LoggedTalk]


@dataclass(frozen=True, slots=True)
class FillFailed:
    """Redis could not be reached for a `Fill`: the broker asks again a little later."""

    fill: Fill


@dataclass(frozen=True, slots=True)
class EpochChanged:
    """Redis came back without the data it had: every room held in memory is gone from it."""


Work: TypeAlias = LogRequest | Fill | Subscribe | Unsubscribe | Presence | Refresh | AskAgain
Answer: TypeAlias = LogResult | Filled | FillFailed | EpochChanged | PresenceSnapshot
"""(A `Presence` has no answer; a `Refresh` has its `PresenceSnapshot`, or none if it failed.)"""
_Command: TypeAlias = LogRequest | Fill | Presence | Refresh
"""Work done by a command in the batch's pipeline."""


@dataclass(frozen=True, slots=True)
class _Numbered:
    """A talk with the number its request has, and keeps when asked again, in the room's ``sent`` records."""

    append: Append
    number: int


_Sent: TypeAlias = _Command | _Numbered
"""A command in a batch's pipeline (talks numbered)."""
_UNREAD = object()
"""The reply to a command that was sent, or may have been, and not read (the connection failed first)."""


@dataclass(frozen=True, slots=True)
class _Subscribed:
    """Redis confirmed a subscription (the first, or again after a reconnect)."""

    join_key: str


@dataclass(frozen=True, slots=True)
class _Connection:
    """The subscriber's connection came up, or went down (``why``)."""

    up: bool
    why: str = ""


Heard: TypeAlias = LoggedTalk | PresenceHeard | _Subscribed | _Connection


def _pool(settings: RedisSettings) -> redis.ConnectionPool:
    # Half the timeout per socket operation: a request may need a connect and then its command.
    wait = settings.timeout / 2
    return redis.ConnectionPool.from_url(
        settings.url, socket_timeout=wait, socket_connect_timeout=wait, retry=Retry(NoBackoff(), 0),
        health_check_interval=0, client_name="chat-server",
    )


class Subscriber:
    """The channels of the rooms this process holds, on one connection of their own, on a thread of their own.

    What it hears goes to the event loop, but for this process's own presence news (``origin``): the core
    counts its own connections itself.
    """

    def __init__(self, settings: RedisSettings, origin: str) -> None:
        self._settings = settings
        self._origin = origin
        self._name = redacted(settings.url)
        self._pool = _pool(settings)
        self._lock = threading.Lock()  # guards what the storage thread and the listening thread share
        self._confirmed = threading.Condition(self._lock)
        self._wanted: set[bytes] = set()
        self._confirmations: dict[bytes, int] = {}
        self._connection: Any = None  # redis.Connection while connected (the library's class is untyped)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, call: LoopCall, hand_over: Callable[[list[Heard]], None]) -> None:
        self._thread = threading.Thread(target=self._listen, args=(call, hand_over), name="chat-redis-sub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._connection is not None:
                self._connection.disconnect()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.disconnect()

    def subscribe(self, join_keys: Sequence[str], *, wait: bool = True) -> set[str]:
        """From the storage thread: listen to these rooms; the ones Redis did not confirm within the timeout.

        Without a connection, the listening thread subscribes to everything
        wanted once it has one: this waits for that too. ``wait`` False:
        only the rooms confirmed already (none) count as confirmed.
        """
        channels = {channel(join_key): join_key for join_key in join_keys}
        with self._lock:
            before = {name: self._confirmations.get(name, 0) for name in channels}
            self._wanted.update(channels)
            if self._connection is not None:
                with contextlib.suppress(RedisError, OSError):  # (the listening thread notices, and reconnects)
                    self._connection.send_command("SUBSCRIBE", *channels, check_health=False)
            deadline = time.monotonic() + (self._settings.timeout if wait else 0.0)
            while True:
                waiting = [name for name, count in before.items() if self._confirmations.get(name, 0) == count]
                remaining = deadline - time.monotonic()
                if not waiting or remaining <= 0:
                    return {channels[name] for name in waiting}
                self._confirmed.wait(remaining)

    def unsubscribe(self, join_key: str) -> None:
        name = channel(join_key)
        with self._lock:
            self._wanted.discard(name)
            self._confirmations.pop(name, None)
            if self._connection is not None:
                with contextlib.suppress(RedisError, OSError):  # (reconnecting subscribes only to what is wanted)
                    self._connection.send_command("UNSUBSCRIBE", name, check_health=False)

    def _listen(self, call: LoopCall, hand_over: Callable[[list[Heard]], None]) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            # A connection of the URL's kind, outside the pool's count: this thread owns it, and makes another
            # after a failure. (Any: the library's connection classes are untyped.)
            connection: Any = self._pool.connection_class(**self._pool.connection_kwargs)
            try:
                connection.connect()
                with self._lock:
                    if self._wanted:
                        connection.send_command("SUBSCRIBE", *self._wanted, check_health=False)
                    self._connection = connection
                call(hand_over, [_Connection(up=True)])
                connected_at = time.monotonic()
                try:
                    self._read(connection, call, hand_over)
                finally:  # the pause grows while connections keep dropping soon after they are made
                    if time.monotonic() - connected_at > STEADY_CONNECTION:
                        backoff = 0.05
            except Exception as error:
                if self._stop.is_set():
                    break  # (stop() closed the connection under the reader's feet: any error may come of it)
                if not isinstance(error, RedisError | OSError):
                    log.exception("Redis %s: subscriber error; reconnecting", self._name)
                call(hand_over, [_Connection(up=False, why=str(error) or type(error).__name__)])
            finally:
                with self._lock:
                    if self._connection is connection:
                        self._connection = None
                    self._confirmed.notify_all()
                connection.disconnect()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 2.0)

    def _read(self, connection: Any, call: LoopCall, hand_over: Callable[[list[Heard]], None]) -> None:
        last_heard, pinged = time.monotonic(), 0.0
        while not self._stop.is_set():
            if not connection.can_read(timeout=1.0):
                now = time.monotonic()
                if pinged and now - pinged > self._settings.timeout:
                    raise TimeoutError("no answer to a ping")
                if not pinged and now - last_heard > KEEPALIVE:
                    with self._lock:
                        connection.send_command("PING", check_health=False)
                    pinged = now
                continue
            burst: list[Heard] = []
            for _ in range(MAX_BURST):  # (bounded: a steady stream of news is handed over in parts)
                # push_request: a subscription's confirmation is a push reply, to be returned, not skipped
                self._take(connection.read_response(disconnect_on_error=False, push_request=True), burst)
                if not connection.can_read(timeout=0):
                    break
            last_heard, pinged = time.monotonic(), 0.0
            if burst:
                call(hand_over, burst)

    def _take(self, reply: Any, burst: list[Heard]) -> None:
        if not isinstance(reply, list) or len(reply) < 3:
            return  # a pong
        kind, name, data = reply[0], reply[1], reply[2]
        if kind == b"message":
            try:
                heard = published(join_key_of(name), data)
            except ValueError:  # not published by our scripts: someone else on our channel
                log.warning("Redis %s: ignored a message on the channel of room %s that is not ours", self._name,
                            room_hash(join_key_of(name)))
                return
            if isinstance(heard, PresenceHeard) and heard.origin == self._origin:
                return  # this process's own news
            burst.append(heard)
        elif kind == b"subscribe":
            with self._lock:
                if name not in self._wanted:
                    return  # unsubscribed meanwhile
                self._confirmations[name] = self._confirmations.get(name, 0) + 1
                self._confirmed.notify_all()
            burst.append(_Subscribed(join_key_of(name)))


class RedisLog:
    """The storage thread's side: the core's requests, presence, fills and subscriptions, in batches.

    ``origin`` names this process in presence entries and news (random unless given).
    """

    def __init__(self, settings: RedisSettings, origin: str | None = None) -> None:
        self.settings = settings
        self.origin = origin or secrets.token_hex(6)
        self._ttl = str(max(1, round(settings.presence_ttl * 1000)))
        self._client = redis.Redis(connection_pool=_pool(settings))
        self.subscriber = Subscriber(settings, self.origin)
        self._epoch: bytes | None = None
        self._numbers = itertools.count(1)
        self._unanswered: list[_Numbered] = []  # talks sent whose answer was not read, oldest first
        self._failed_at = -RETRY_AFTER_FAILURE
        self.reachable = False
        """Whether Redis answered the last batch or ping (metrics: the commands' connection)."""

    @property
    def name(self) -> str:
        return redacted(self.settings.url)

    def open(self) -> None:
        """At start: check that Redis answers and take its epoch (`RedisError` if it cannot be reached)."""
        self._epoch = self._take_epoch(None)
        self.reachable = True

    def ping(self) -> None:
        """Readiness, from a worker thread of its own (the client's pool is thread-safe): `RedisError` or
        `OSError` unless Redis answers, within about ``timeout``."""
        try:
            self._client.ping()
        except (RedisError, OSError):
            self.reachable = False
            raise
        self.reachable = True

    @property
    def unanswered(self) -> int:
        """Talks Redis was sent (or may have been) and has not answered yet: asked again at every batch."""
        return len(self._unanswered)

    def close(self) -> None:
        if self._unanswered:
            log.warning("Redis %s: stopping with %d messages sent to it and never answered: their senders were "
                        "not told whether they were stored", self.name, len(self._unanswered))
        self.subscriber.stop()
        self._client.close()
        self._client.connection_pool.disconnect()  # (a pool given to a client is not closed with it)

    def failed(self, batch: Sequence[Work], reason: str) -> list[Answer]:
        return [answer for work in batch if (answer := _failure(work, reason)) is not None]

    def run(self, batch: Sequence[Work]) -> list[Answer]:
        answers: list[Answer] = []
        pending: list[_Command | LogFailed] = []
        subscribing: list[str] = []
        unconfirmed: set[str] = set()
        for work in batch:
            if isinstance(work, AskAgain):
                continue  # (a batch is all it asks for: the unanswered are asked again in every one)
            if isinstance(work, Subscribe):
                subscribing.append(work.join_key)
                continue
            if subscribing:  # before anything after them: what they confirm must be in place first
                answers.extend(self._commands(pending))
                pending = []
                unconfirmed = self._subscribe(subscribing)
                subscribing = []
            if isinstance(work, Unsubscribe):
                self.subscriber.unsubscribe(work.join_key)
            elif unconfirmed and _opens_a_room(work) and work.join_key in unconfirmed:
                # Read now, the room could miss what is published before the subscription is in place.
                pending.append(LogFailed(work.ticket, UNREACHABLE))
            else:
                pending.append(work)
        if subscribing:
            self._subscribe(subscribing)
        answers.extend(self._commands(pending))
        return answers

    def _subscribe(self, join_keys: list[str]) -> set[str]:
        """Subscribe; the rooms not confirmed in time (every one at once while Redis is failing)."""
        failing = time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE
        unconfirmed = self.subscriber.subscribe(join_keys, wait=not failing)
        if unconfirmed and not failing:
            log.warning("Redis %s: %d subscriptions not confirmed within %gs; joining them fails for now",
                        self.name, len(unconfirmed), self.settings.timeout)
        return unconfirmed

    def _commands(self, work: list[_Command | LogFailed]) -> list[Answer]:
        """The answers to ``work`` in its order (a `LogFailed` in it is an answer already)."""
        commands = [item for item in work if not isinstance(item, LogFailed)]
        answers, results = self._results(commands)
        replies = iter(results)
        for item in work:
            answer = item if isinstance(item, LogFailed) else next(replies)
            if answer is not None:
                answers.append(answer)
        return answers

    def _results(self, work: list[_Command]) -> tuple[list[Answer], list[Answer | None]]:
        """What comes before the answers (the epoch's change, answers to talks asked again), and each command's
        answer (None: it has none, or it is a talk whose answer was not read: asked again later)."""
        if not work and not self._unanswered:
            return [], []
        if time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE:
            return [], [_failure(item, UNREACHABLE) for item in work]  # (nothing sent: the unanswered wait)
        again = self._unanswered
        sent: list[_Sent] = [*again, *(_Numbered(item, next(self._numbers)) if isinstance(item, Append) else item
                                       for item in work)]
        try:
            replies, lost = self._execute(sent)
            if lost is None and any(isinstance(reply, NoScriptError) for reply in replies):
                # Redis restarted (its script cache is empty): none of the batch's scripts ran
                for source, _ in SCRIPTS.values():
                    self._client.script_load(source)
                replies, lost = self._execute(sent)
        except (RedisError, OSError) as error:  # no connection: nothing was sent
            self._failed(error)
            return [], [_failure(item, UNREACHABLE) for item in work]
        first: list[Answer] = []
        if replies and replies[0] != self._epoch:
            try:
                known, self._epoch = self._epoch, self._take_epoch(replies[0])
            except (RedisError, OSError) as error:  # (seen again at the next batch)
                lost = lost or error
            else:
                if known is not None:
                    first.append(EpochChanged())
        answers: list[Answer | None] = []
        unanswered: list[_Numbered] = []
        for index, item in enumerate(sent):
            reply = replies[index + 1] if index + 1 < len(replies) else _UNREAD
            if reply is not _UNREAD:
                answer = self._answer(item.append if isinstance(item, _Numbered) else item, reply)
            elif isinstance(item, _Numbered):
                unanswered.append(item)  # it may have reached Redis: only Redis can say whether it stored it
                answer = None
            else:
                answer = _failure(item, UNREACHABLE)
            if index >= len(again):
                answers.append(answer)
            elif answer is not None:
                first.append(answer)
        self._unanswered = unanswered
        if lost is None:
            self.reachable = True
        else:
            self._failed(lost)
        return first, answers

    def _failed(self, error: Exception) -> None:
        self._failed_at = time.monotonic()
        self.reachable = False
        waiting = f" ({len(self._unanswered)} messages wait for its answer)" if self._unanswered else ""
        log.warning("Redis %s: %s; requests fail until it answers%s", self.name, error or type(error).__name__,
                    waiting)

    def _execute(self, sent: list[_Sent]) -> tuple[list[Any], Exception | None]:
        """Redis's epoch and the commands, as one pipeline on one connection: the replies read (an error reply as
        its exception), and why the rest were not (None: all were). Raises if no connection is to be had: then
        nothing was sent."""
        pool = self._client.connection_pool
        connection: Any = pool.get_connection()  # (Any: the library's connection classes are untyped)
        replies: list[Any] = []
        try:
            floor = min((item.number for item in sent if isinstance(item, _Numbered)), default=0)
            commands = [("GET", EPOCH_KEY), *(self._command(item, floor) for item in sent)]
            connection.send_packed_command(connection.pack_commands(commands))
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except ResponseError as error:
                    replies.append(error)
        except (RedisError, OSError) as error:
            connection.disconnect()
            return replies, error
        finally:
            pool.release(connection)
        return replies, None

    def _command(self, item: _Sent, floor: int) -> tuple[Any, ...]:
        """The command that does ``item``; ``floor``: the lowest number of a talk not answered yet."""
        key = item.append.join_key if isinstance(item, _Numbered) else item.join_key
        retention, origin, ttl = str(self.settings.retention), self.origin, self._ttl
        if isinstance(item, _Numbered):
            append = item.append
            return ("EVALSHA", SCRIPTS["append"][1], 4, room_key(key), talks_key(key), ids_key(key),
                    sent_key(key, origin), channel(key), retention, append.user_id, repr(append.time), append.payload,
                    append.name or "", append.talk_id or "", item.number, floor, SENT_TTL_MS)
        if isinstance(item, AddUser):
            created = "" if item.created is None else repr(item.created)
            return ("EVALSHA", SCRIPTS["add_user"][1], 2, room_key(key), users_key(key), created,
                    item.token_hash or "", item.resume_hash or "", item.name or "")
        if isinstance(item, Load):
            return ("EVALSHA", SCRIPTS["load"][1], 4, room_key(key), who_key(key), users_key(key), talks_key(key),
                    item.recent)
        if isinstance(item, Presence):
            return ("EVALSHA", SCRIPTS["presence"][1], 3, room_key(key), who_key(key), users_key(key), channel(key),
                    origin, item.user_id, "1" if item.here else "0", ttl)
        if isinstance(item, Refresh):
            return ("EVALSHA", SCRIPTS["refresh"][1], 3, room_key(key), who_key(key), users_key(key), channel(key),
                    origin, ttl, *item.user_ids)
        if isinstance(item, Rename):
            return ("EVALSHA", SCRIPTS["rename"][1], 3, room_key(key), who_key(key), users_key(key), channel(key),
                    origin, item.user_id, item.name)
        if isinstance(item, History):
            highest = max(0, min(item.before, 2**63) - 1)  # (a stream id is at most 2**64 - 1)
            return ("EVALSHA", SCRIPTS["history"][1], 2, room_key(key), talks_key(key), str(highest), item.limit)
        assert isinstance(item, Fill), item  # (an Append is always numbered)
        return ("XRANGE", talks_key(key), str(item.after + 1), "+")

    def _take_epoch(self, seen: bytes | None) -> bytes:
        """Redis's epoch, set now if it has none (a first start, or data lost); a change is logged loudly."""
        self._client.set(EPOCH_KEY, secrets.token_hex(8), nx=True)
        epoch = self._client.get(EPOCH_KEY)
        assert isinstance(epoch, bytes)
        if self._epoch is not None and epoch != self._epoch:
            log.critical(
                "Redis %s came back without its data (epoch %s, was %s): every room this process held is gone "
                "from it; their members are closed with 1012 and rejoin what Redis has now. Configure Redis "
                "with appendonly yes to keep rooms across its restarts.",
                self.name, epoch.decode(), self._epoch.decode(),
            )
        for source, _ in SCRIPTS.values():
            self._client.script_load(source)
        return epoch

    def _answer(self, item: _Command, reply: Any) -> Answer | None:
        """One pipeline reply as the answer the loop expects (None: the command has none)."""
        key = item.join_key
        if isinstance(item, Fill):
            if isinstance(reply, Exception):
                return FillFailed(item)
            return Filled(item, [_talk(key, entry) for entry in reply])
        if isinstance(item, Presence | Refresh):
            if isinstance(reply, Exception):
                log.error("Redis: %s", reply)
                return None
            if isinstance(item, Presence) or reply is None:
                return None  # (a Refresh of a room Redis does not have)
            seq, who = reply
            return self.snapshot(key, seq, who)
        if isinstance(reply, Exception):
            log.error("Redis: %s", reply)
            return LogFailed(item.ticket, INCONSISTENT)
        if isinstance(item, Append):
            if isinstance(reply, list):
                return Appended(item.ticket, _talk(key, reply[0]), duplicate=True)
            if reply <= 0:  # no room; or (never for a request still waiting for its answer) refused as late
                return LogFailed(item.ticket, INCONSISTENT)
            return Appended(item.ticket, LoggedTalk(
                key, int(reply), item.user_id, item.time, item.payload, item.name, item.talk_id
            ))
        if isinstance(item, AddUser):
            if reply == -1:
                return KeyTaken(item.ticket)
            if reply == 0:
                return LogFailed(item.ticket, INCONSISTENT)
            user_id, resumed, name = reply
            return UserAdded(item.ticket, int(user_id), bool(resumed), _text(name))
        if isinstance(item, Rename):
            return LogFailed(item.ticket, INCONSISTENT) if reply == 0 else NameSaved(item.ticket, int(reply))
        if isinstance(item, History):
            if reply is None:
                return LogFailed(item.ticket, INCONSISTENT)
            entries, older = reply
            return HistoryRead(item.ticket, tuple(_talk(key, entry) for entry in reversed(entries)), bool(older))
        if reply is None:
            return Loaded(item.ticket, None)
        last_offset, entries, seq, who = reply
        talks = tuple(_talk(key, entry) for entry in reversed(entries))
        return Loaded(item.ticket, SavedRoom(key, int(last_offset), talks, self.snapshot(key, seq, who)))

    def snapshot(self, join_key: str, seq: Any, who: Any) -> PresenceSnapshot:
        """A script's {pseq, {{members}, {names}}} as the core takes it: without this process's own entries."""
        members, names = who
        entries: list[tuple[str, int, str | None]] = []
        for member, name in zip(members, names, strict=True):
            origin, _, user_id = member.decode().rpartition(":")
            if origin != self.origin:
                entries.append((origin, int(user_id), _text(name)))
        return PresenceSnapshot(join_key, int(seq), tuple(sorted(entries)))


def _opens_a_room(work: Work) -> TypeGuard[Load | AddUser]:
    """A request that reads a room the process begins to hold: the subscription asked before it must be in place."""
    return isinstance(work, Load) or (isinstance(work, AddUser) and work.created is not None)


def _failure(work: Work, reason: str) -> Answer | None:
    """The answer to work that could not be done (None: it has none; a missed `Presence` is renewed by `Refresh`)."""
    if isinstance(work, AddUser | Append | Load | Rename | History):
        return LogFailed(work.ticket, reason)
    if isinstance(work, Fill):
        return FillFailed(work)
    return None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _talk(join_key: str, entry: Any) -> LoggedTalk:
    entry_id, fields = entry
    values = dict(zip(fields[::2], fields[1::2], strict=True)) if isinstance(fields, list) else fields
    offset = int(entry_id.split(b"-", 1)[0])
    return LoggedTalk(
        join_key, offset, int(values[b"u"]), float(values[b"t"]), values[b"p"].decode(), _text(values.get(b"n")),
        _text(values.get(b"i")),
    )


class RedisBroker:
    """The event loop's side: the core's log actions in (`submit`), results and news out (``deliver``)."""

    def __init__(self, settings: RedisSettings, origin: str | None = None) -> None:
        self.log = RedisLog(settings, origin)
        self.worker: StorageWorker[Work, Answer] = StorageWorker(self.log)
        self._deliver: Callable[[LogResult], None] = _not_running
        self._tasks: anyio.abc.TaskGroup | None = None
        self._up = True
        self.gaps_filled = 0
        """Gaps in what a room's channel brought, read back from its stream (metrics)."""
        self.here: dict[str, set[int]] = {}
        """The users with a connection to each room on this process (as the core said: `Presence`)."""

    def submit(self, action: LogAction) -> None:
        """Take one of the core's log actions."""
        if isinstance(action, Forget):
            self.worker.submit(Unsubscribe(action.join_key))
        elif isinstance(action, Presence):
            self._presence(action)
        else:
            self.worker.submit(action)

    def _presence(self, presence: Presence) -> None:
        users = self.here.get(presence.join_key)
        if presence.here:
            if users is None:
                users = self.here[presence.join_key] = set()
            users.add(presence.user_id)
        elif users is not None:
            users.discard(presence.user_id)
            if not users:
                del self.here[presence.join_key]
        self.worker.submit(presence)

    # Presence kept alive

    def refresh(self, join_key: str | None = None) -> None:
        """Renew this process's presence in every room it has users in (or in one), and read who is there."""
        keys = list(self.here) if join_key is None else [join_key] if join_key in self.here else []
        for key in keys:
            self.worker.submit(Refresh(key, tuple(sorted(self.here[key]))))

    async def _refreshing(self) -> None:
        period = max(self.log.settings.presence_ttl / 3, 0.05)  # (however short a ttl it is given)
        while True:
            await anyio.sleep(period)
            self.refresh()

    async def _asking_again(self) -> None:
        """Have talks Redis did not answer asked about again even when nothing else goes to it."""
        while True:
            await anyio.sleep(RETRY_AFTER_FAILURE / 2)
            if self.log.unanswered:
                self.worker.submit(AskAgain())

    # Running

    async def run(self, deliver: Callable[[LogResult], None]) -> None:
        """Serve the core's log until cancelled, handing ``deliver`` every result and news, on the event loop."""
        self._deliver = deliver
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            self.log.subscriber.start(loop_call(), self._heard)
            tasks.start_soon(self.worker.run, self._answer)
            tasks.start_soon(self._refreshing)
            tasks.start_soon(self._asking_again)

    async def drain(self) -> None:
        """Wait until everything asked so far is answered, talks Redis has not answered yet included."""
        await self.worker.drain()
        while self.log.unanswered:
            await anyio.sleep(RETRY_AFTER_FAILURE / 2)  # (`_asking_again` has them asked again meanwhile)
            await self.worker.drain()

    @property
    def listening(self) -> bool:
        """Whether the subscriber's connection is up (as last handed over to the event loop)."""
        return self._up

    def _answer(self, answer: Answer) -> None:
        if isinstance(answer, Filled):
            self.gaps_filled += 1
            self._deliver(chatcore.Filled(answer.fill.join_key, answer.fill.after, tuple(answer.talks)))
        elif isinstance(answer, FillFailed):
            assert self._tasks is not None
            self._tasks.start_soon(self._refill, answer.fill)
        elif isinstance(answer, EpochChanged):
            self._deliver(LogLost())
        else:
            self._deliver(answer)

    async def _refill(self, fill: Fill) -> None:
        await anyio.sleep(REFILL_DELAY)
        self.worker.submit(fill)

    def _heard(self, burst: list[Heard]) -> None:
        """On the event loop: what the subscriber heard, in order."""
        for item in burst:
            try:
                if isinstance(item, LoggedTalk):
                    self._deliver(TalkArrived(item))
                elif isinstance(item, PresenceHeard):
                    self._deliver(item)
                elif isinstance(item, _Subscribed):
                    self._deliver(Subscribed(item.join_key))
                    self.refresh(item.join_key)  # (again, after a reconnect: news may have been missed meanwhile)
                elif item.up != self._up:
                    self._up = item.up
                    if item.up:
                        log.warning("Redis %s: listening again; rooms read back what they missed", self.log.name)
                    else:
                        log.warning("Redis %s: lost the subscriber's connection (%s); reconnecting",
                                    self.log.name, item.why)
            except Exception:
                log.exception("internal error while handing over what Redis published")


def _not_running(result: LogResult) -> None:
    raise RuntimeError("Redis answers arrived before RedisBroker.run")
