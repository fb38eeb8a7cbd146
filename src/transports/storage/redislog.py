"""The room log in Redis, shared by every chat-server process started with the same ``--redis``.

Keys (each room's carry its join key as a hash tag, so a Redis Cluster keeps a room on one node):

    chat:{KEY}:room   hash: created, users (the last user id handed out), offset (the last talk's)
    chat:{KEY}:talks  stream: one entry per talk, id "<offset>-0", fields u (user id), t (time),
                      p (payload); trimmed to about ``retention`` entries (XADD MAXLEN ~)
    chat:{KEY}:live   channel: "<offset>\\n<user id>\\n<time>\\n<payload>" for each talk, published by the
                      script that appends it, so that a channel's order is its room's offset order
    chat:epoch        a random value, set once: a Redis that comes back without its data has another

Three parts, each on its own thread of control:

- `RedisLog` runs on the storage thread (`StorageWorker`): the core's requests
  in batches, one pipeline per batch, each write one script (`ADD_USER`,
  `APPEND`; `LOAD` reads a room in one step); fills (XRANGE); subscriptions,
  sent on the subscriber's connection and waited for before anything after
  them runs; and the epoch, checked at the head of every batch.
- `Subscriber` has a thread and a connection of its own for the channels. It
  reconnects with backoff, subscribes again to every room still wanted
  (each confirmation makes the room's `RoomFeed` read back what it may have
  missed), pings when the connection is quiet, and hands what it hears to
  the event loop in bursts.
- `RedisBroker`, on the event loop, is the `chatcore.shared.Broker` of a
  `SharedChat`, and hands every answer back to it.

While Redis is unreachable every request fails within the timeout (then at
once, for a second, before the next try) with "storage unreachable", which
the core turns into an error event for the client; connections stay open.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import anyio.abc
import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.retry import Retry

from chatcore import (
    Action,
    AddUser,
    Append,
    Appended,
    KeyTaken,
    Load,
    Loaded,
    LogFailed,
    LoggedTalk,
    LogRequest,
    LogResult,
    SavedRoom,
    UserAdded,
)
from chatcore.feed import Fill
from chatcore.shared import SharedChat

from ..config import RedisSettings
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

ADD_USER = """
if ARGV[1] ~= '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
  redis.call('HSET', KEYS[1], 'created', ARGV[1], 'users', 0, 'offset', 0)
elseif redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
return redis.call('HINCRBY', KEYS[1], 'users', 1)
"""
"""KEYS: room. ARGV: created time ('' to join an existing room). The new user id; -1: key taken; 0: no room."""

APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], offset .. '-0', 'u', ARGV[3], 't', ARGV[4], 'p', ARGV[5])
redis.call('PUBLISH', ARGV[1], offset .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4] .. '\\n' .. ARGV[5])
return offset
"""
"""KEYS: room, talks. ARGV: channel, retention, user id, time, payload. The talk's offset; 0: no room."""

LOAD = """
local offset = redis.call('HGET', KEYS[1], 'offset')
if not offset then return false end
if ARGV[1] == '0' then return {offset, {}} end
return {offset, redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[1])}
"""
"""KEYS: room, talks. ARGV: how many recent talks. False: no room; else the last offset and the talks, newest first."""

SCRIPTS = {name: (source, hashlib.sha1(source.encode()).hexdigest()) for name, source in
           (("add_user", ADD_USER), ("append", APPEND), ("load", LOAD))}


def room_key(join_key: str) -> str:
    return f"chat:{{{join_key}}}:room"


def talks_key(join_key: str) -> str:
    return f"chat:{{{join_key}}}:talks"


def channel(join_key: str) -> bytes:
    return f"chat:{{{join_key}}}:live".encode()


def join_key_of(channel_name: bytes) -> str:
    return channel_name[6:-6].decode()  # chat:{ ... }:live


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
class Subscribe:
    """Listen to the room's channel; what is asked after it runs once Redis confirms (or the timeout passes)."""

    join_key: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Stop listening to the room's channel."""

    join_key: str


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


Work: TypeAlias = LogRequest | Fill | Subscribe | Unsubscribe
Answer: TypeAlias = LogResult | Filled | FillFailed | EpochChanged


@dataclass(frozen=True, slots=True)
class _Subscribed:
    """Redis confirmed a subscription (the first, or again after a reconnect)."""

    join_key: str


@dataclass(frozen=True, slots=True)
class _Connection:
    """The subscriber's connection came up, or went down (``why``)."""

    up: bool
    why: str = ""


Heard: TypeAlias = LoggedTalk | _Subscribed | _Connection


def _pool(settings: RedisSettings) -> redis.ConnectionPool:
    # Half the timeout per socket operation: a request may need a connect and then its command.
    wait = settings.timeout / 2
    return redis.ConnectionPool.from_url(
        settings.url, socket_timeout=wait, socket_connect_timeout=wait, retry=Retry(NoBackoff(), 0),
        health_check_interval=0, client_name="chat-server",
    )


class Subscriber:
    """The channels of the rooms this process holds, on one connection of their own, on a thread of their own."""

    def __init__(self, settings: RedisSettings) -> None:
        self._settings = settings
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

    def subscribe(self, join_keys: Sequence[str]) -> None:
        """From the storage thread: listen to these rooms, and wait (up to the timeout) until Redis confirms."""
        channels = [channel(join_key) for join_key in join_keys]
        with self._lock:
            before = {name: self._confirmations.get(name, 0) for name in channels}
            self._wanted.update(channels)
            if self._connection is None:
                return  # the listening thread subscribes to everything wanted once it is connected
            try:
                self._connection.send_command("SUBSCRIBE", *channels, check_health=False)
            except (RedisError, OSError):
                return  # the listening thread notices, reconnects, and subscribes again
            deadline = time.monotonic() + self._settings.timeout
            while any(self._confirmations.get(name, 0) == count for name, count in before.items()):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._connection is None:
                    return
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
                backoff = 0.05
                self._read(connection, call, hand_over)
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
            while True:
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
                offset, user_id, sent, payload = data.split(b"\n", 3)
                talk = LoggedTalk(join_key_of(name), int(offset), int(user_id), float(sent), payload.decode())
            except ValueError:  # not published by our script: someone else on our channel
                log.warning("Redis %s: ignored a message on %r that is not a talk", self._name, name[:80])
                return
            burst.append(talk)
        elif kind == b"subscribe":
            with self._lock:
                if name not in self._wanted:
                    return  # unsubscribed meanwhile
                self._confirmations[name] = self._confirmations.get(name, 0) + 1
                self._confirmed.notify_all()
            burst.append(_Subscribed(join_key_of(name)))


class RedisLog:
    """The storage thread's side: the core's requests, fills and subscriptions, in batches."""

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self._client = redis.Redis(connection_pool=_pool(settings))
        self.subscriber = Subscriber(settings)
        self._epoch: bytes | None = None
        self._failed_at = -RETRY_AFTER_FAILURE

    @property
    def name(self) -> str:
        return redacted(self.settings.url)

    def open(self) -> None:
        """At start: check that Redis answers and take its epoch (`RedisError` if it cannot be reached)."""
        self._epoch = self._take_epoch(None)

    def close(self) -> None:
        self.subscriber.stop()
        self._client.close()

    def failed(self, batch: Sequence[Work], reason: str) -> list[Answer]:
        answers: list[Answer] = []
        for work in batch:
            if isinstance(work, AddUser | Append | Load):
                answers.append(LogFailed(work.ticket, reason))
            elif isinstance(work, Fill):
                answers.append(FillFailed(work))
        return answers

    def run(self, batch: Sequence[Work]) -> list[Answer]:
        answers: list[Answer] = []
        pending: list[LogRequest | Fill] = []
        subscribing: list[str] = []
        for work in batch:
            if isinstance(work, Subscribe):
                subscribing.append(work.join_key)
                continue
            if subscribing:  # before anything after them: what they confirm must be in place first
                answers.extend(self._commands(pending))
                pending = []
                self.subscriber.subscribe(subscribing)
                subscribing = []
            if isinstance(work, Unsubscribe):
                self.subscriber.unsubscribe(work.join_key)
            else:
                pending.append(work)
        if subscribing:
            self.subscriber.subscribe(subscribing)
        answers.extend(self._commands(pending))
        return answers

    def _commands(self, work: list[LogRequest | Fill]) -> list[Answer]:
        if not work:
            return []
        if time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE:
            return self.failed(work, UNREACHABLE)
        try:
            try:
                replies = self._pipeline(work)
            except NoScriptError:  # Redis restarted (its script cache is empty): nothing of the batch ran
                for source, _ in SCRIPTS.values():
                    self._client.script_load(source)
                replies = self._pipeline(work)
        except (RedisError, OSError) as error:
            if not isinstance(error, ResponseError):
                self._failed_at = time.monotonic()
                log.warning("Redis %s: %s; requests fail until it answers", self.name, error or type(error).__name__)
                return self.failed(work, UNREACHABLE)
            log.error("Redis %s: %s", self.name, error)
            return self.failed(work, INCONSISTENT)
        epoch, *results = replies
        answers: list[Answer] = []
        if epoch != self._epoch:
            known, self._epoch = self._epoch, self._take_epoch(epoch)
            if known is not None:
                answers.append(EpochChanged())
        answers.extend(_answer(item, reply) for item, reply in zip(work, results, strict=True))
        return answers

    def _pipeline(self, work: list[LogRequest | Fill]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        pipe.get(EPOCH_KEY)
        retention = str(self.settings.retention)
        for item in work:
            if isinstance(item, Append):
                key = item.join_key
                pipe.evalsha(SCRIPTS["append"][1], 2, room_key(key), talks_key(key), channel(key), retention,
                             item.user_id, repr(item.time), item.payload)
            elif isinstance(item, AddUser):
                created = "" if item.created is None else repr(item.created)
                pipe.evalsha(SCRIPTS["add_user"][1], 1, room_key(item.join_key), created)
            elif isinstance(item, Load):
                pipe.evalsha(SCRIPTS["load"][1], 2, room_key(item.join_key), talks_key(item.join_key), item.recent)
            else:
                pipe.xrange(talks_key(item.join_key), min=str(item.after + 1), max="+")
        replies: list[Any] = pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, NoScriptError):
                raise reply
        return replies

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


def _answer(item: LogRequest | Fill, reply: Any) -> Answer:
    """One pipeline reply as the answer the loop expects."""
    if isinstance(item, Fill):
        if isinstance(reply, Exception):
            return FillFailed(item)
        return Filled(item, [_talk(item.join_key, entry) for entry in reply])
    if isinstance(reply, Exception):
        log.error("Redis: %s", reply)
        return LogFailed(item.ticket, INCONSISTENT)
    if isinstance(item, Append):
        if reply == 0:
            return LogFailed(item.ticket, INCONSISTENT)
        return Appended(item.ticket, LoggedTalk(item.join_key, int(reply), item.user_id, item.time, item.payload))
    if isinstance(item, AddUser):
        if reply == -1:
            return KeyTaken(item.ticket)
        if reply == 0:
            return LogFailed(item.ticket, INCONSISTENT)
        return UserAdded(item.ticket, int(reply))
    if reply is None:
        return Loaded(item.ticket, None)
    last_offset, entries = reply
    talks = tuple(_talk(item.join_key, entry) for entry in reversed(entries))
    return Loaded(item.ticket, SavedRoom(item.join_key, int(last_offset), talks))


def _talk(join_key: str, entry: Any) -> LoggedTalk:
    entry_id, fields = entry
    values = dict(zip(fields[::2], fields[1::2], strict=True)) if isinstance(fields, list) else fields
    offset = int(entry_id.split(b"-", 1)[0])
    return LoggedTalk(join_key, offset, int(values[b"u"]), float(values[b"t"]), values[b"p"].decode())


class RedisBroker:
    """The event loop's side: `chatcore.shared.Broker` for one `SharedChat`, and its answers handed back."""

    def __init__(self, settings: RedisSettings) -> None:
        self.log = RedisLog(settings)
        self.worker: StorageWorker[Work, Answer] = StorageWorker(self.log)
        self._chat: SharedChat | None = None
        self._perform: Callable[[list[Action]], None] = _not_running
        self._tasks: anyio.abc.TaskGroup | None = None
        self._up = True

    # chatcore.shared.Broker

    def request(self, request: LogRequest) -> None:
        self.worker.submit(request)

    def subscribe(self, join_key: str) -> None:
        self.worker.submit(Subscribe(join_key))

    def unsubscribe(self, join_key: str) -> None:
        self.worker.submit(Unsubscribe(join_key))

    def fill(self, fill: Fill) -> None:
        self.worker.submit(fill)

    # Running

    async def run(self, chat: SharedChat, perform: Callable[[list[Action]], None]) -> None:
        """Serve the chat's log until cancelled; ``perform`` does the actions for clients the answers bring."""
        self._chat, self._perform = chat, perform
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            self.log.subscriber.start(loop_call(), self._heard)
            tasks.start_soon(self.worker.run, self._answer)

    async def drain(self) -> None:
        """Wait until everything asked so far is answered."""
        await self.worker.drain()

    def _answer(self, answer: Answer) -> None:
        chat = self._chat
        assert chat is not None
        if isinstance(answer, Filled):
            self._perform(chat.filled(answer.fill.join_key, answer.fill.after, answer.talks))
        elif isinstance(answer, FillFailed):
            assert self._tasks is not None
            self._tasks.start_soon(self._refill, answer.fill)
        elif isinstance(answer, EpochChanged):
            self._perform(chat.log_lost())
        else:
            self._perform(chat.log_result(answer))

    async def _refill(self, fill: Fill) -> None:
        await anyio.sleep(REFILL_DELAY)
        self.worker.submit(fill)

    def _heard(self, burst: list[Heard]) -> None:
        """On the event loop: what the subscriber heard, in order."""
        chat = self._chat
        assert chat is not None
        for item in burst:
            try:
                if isinstance(item, LoggedTalk):
                    self._perform(chat.heard(item))
                elif isinstance(item, _Subscribed):
                    self._perform(chat.subscribed(item.join_key))
                elif item.up != self._up:
                    self._up = item.up
                    if item.up:
                        log.warning("Redis %s: listening again; rooms read back what they missed", self.log.name)
                    else:
                        log.warning("Redis %s: lost the subscriber's connection (%s); reconnecting",
                                    self.log.name, item.why)
            except Exception:
                log.exception("internal error while handing over what Redis published")


def _not_running(actions: list[Action]) -> None:
    raise RuntimeError("Redis answers arrived before RedisBroker.run")
