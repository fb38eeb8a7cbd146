"""Listening to the rooms' channels: `Subscriber`, on a thread and a connection of its own."""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import hiredis
from redis.exceptions import InvalidResponse, RedisError, ResponseError

from chatcore import LoggedTalk, PresenceHeard, TypingHeard
from chatcore.results import Expired, LoggedChange

from ..config import RedisSettings
from ..logs import room_hash
from .loopcall import LoopCall
from .redisconnection import connection_pool, redacted
from .redisscheme import channel, join_key_of, published

logger = logging.getLogger(__name__)

KEEPALIVE = 5.0
"""Seconds of silence on the subscriber's connection before it pings Redis to find out whether it is alive."""
STEADY_CONNECTION = 5.0
"""Seconds a subscriber's connection must have lasted for its next reconnect to start at the shortest pause."""
MAX_BURST = 512
"""Most messages the subscriber reads before it hands them to the event loop (which takes them all in one go)."""
_READ_SIZE = 65536


@dataclass(frozen=True, slots=True)
class _Subscribed:
    """Redis confirmed a subscription (the first, or again after a reconnect)."""

    join_key: str


@dataclass(frozen=True, slots=True)
class _Connection:
    """The subscriber's connection came up, or went down (``why``)."""

    up: bool
    why: str = ""


Heard: TypeAlias = LoggedTalk | PresenceHeard | TypingHeard | LoggedChange | Expired | _Subscribed | _Connection


class Subscriber:
    """The channels of the rooms this process holds, on one connection of their own, on a thread of their own.

    What it hears goes to the event loop, but for this process's own presence and typing news (``origin``): the
    core counts its own connections itself, and told its own members who types. (Its own changes come back as
    well: the core takes each change once.)
    """

    def __init__(self, settings: RedisSettings, origin: str) -> None:
        self._settings = settings
        self._origin = origin
        self._name = redacted(settings.url)
        self._pool = connection_pool(settings)
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
                    logger.exception("Redis %s: subscriber error; reconnecting", self._name)
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
        # Our own reader on the connection's socket: one recv brings every message waiting, parsed in C, where
        # redis-py's read_response and can_read cost a call chain and two polls per message. (The connection's
        # own parser only read the replies to its handshake: Redis sends nothing unasked before SUBSCRIBE.)
        sock = connection._sock
        if sock is None:
            raise ConnectionError("not connected")  # (stop() came first)
        reader = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)
        ready = select.poll()
        ready.register(sock, select.POLLIN)
        pending: Callable[[], int] = getattr(sock, "pending", _nothing)  # (TLS: bytes decrypted, not yet read)
        last_heard, pinged = time.monotonic(), 0.0
        while not self._stop.is_set():
            if not pending() and not ready.poll(1000):
                now = time.monotonic()
                if pinged and now - pinged > self._settings.timeout:
                    raise TimeoutError("no answer to a ping")
                if not pinged and now - last_heard > KEEPALIVE:
                    with self._lock:
                        connection.send_command("PING", check_health=False)
                    pinged = now
                continue
            data = sock.recv(_READ_SIZE)
            if not data:
                raise ConnectionError("Connection closed by server.")
            reader.feed(data)
            burst: list[Heard] = []
            try:
                while (reply := reader.gets()) is not False:
                    if isinstance(reply, ResponseError):
                        raise reply
                    self._take(reply, burst)
                    if len(burst) >= MAX_BURST:  # (bounded: a steady stream of news is handed over in parts)
                        call(hand_over, burst)
                        burst = []
            finally:  # (what was read goes over even if the connection then failed: a confirmation the storage
                # thread counted on must reach the core, or a room read after it would never be read back)
                if burst:
                    call(hand_over, burst)
            last_heard, pinged = time.monotonic(), 0.0

    def _take(self, reply: Any, burst: list[Heard]) -> None:
        if not isinstance(reply, list) or len(reply) < 3:
            return  # a pong
        kind, name, data = reply[0], reply[1], reply[2]
        if kind == b"message":
            try:
                heard = published(join_key_of(name), data)
            except ValueError:  # not published by our scripts: someone else on our channel
                logger.warning("Redis %s: ignored a message on the channel of room %s that is not ours", self._name,
                               room_hash(join_key_of(name)))
                return
            if isinstance(heard, PresenceHeard | TypingHeard) and heard.origin == self._origin:
                return  # this process's own news
            burst.append(heard)
        elif kind == b"subscribe":
            with self._lock:
                if name not in self._wanted:
                    return  # unsubscribed meanwhile
                self._confirmations[name] = self._confirmations.get(name, 0) + 1
                self._confirmed.notify_all()
            burst.append(_Subscribed(join_key_of(name)))


def _nothing() -> int:
    return 0
