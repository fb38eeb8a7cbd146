"""The room log in Redis, shared by every chat-server process started with the same ``--redis``.

Its keys and Lua scripts are in `redisscheme`.

Three parts, each on its own thread of control:

- `RedisLog` runs on the storage thread (`StorageWorker`): the core's requests
  in batches, one pipeline per batch, each one script (`ADD_USER`, `APPEND`,
  `LOAD`, `RENAME`, `HISTORY`; presence: `PRESENCE`, `REFRESH`); fills
  (`FILL`); subscriptions, sent on the subscriber's connection and waited
  for before anything after them runs; changes of rooms (`Moderate`, in
  their place in the batch: `redismoderation`); and the epoch, checked at the
  head of every batch. Retention (`sweep`) runs on a thread of its own.
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
once, for a second, before the next try) with "storage unreachable" (for the
log: the client gets an error event saying to try again); connections stay open.
But a talk is reported not stored only when it certainly was not and never
will be: one whose request may have reached Redis (sent, no answer read) is
asked again, under the same request number, at the head of every later
batch (`AskAgain` makes one while the rooms are quiet) until Redis answers;
the script stores it once however many copies arrive, in whatever order.
Its answer then comes after answers to later requests.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

import hiredis
import redis
from redis.exceptions import InvalidResponse, NoScriptError, RedisError, ResponseError

from chatcore import AddUser, Append, Forget, Load, LogFailed, Subscribe
from chatcore.actions import Expire, Moderate
from chatcore.results import INCONSISTENT, Changed, Refused

from ..config import RedisSettings
from .redischanges import EVICT_WINDOW
from .rediscommands import (
    Answer,
    AskAgain,
    Command,
    EpochChanged,
    FilledFrom,
    FillFailed,
    Numbered,
    Refresh,
    Sent,
    SweepDue,
    Work,
    command,
    failure,
)
from .rediscommands import answer as answer_of
from .redisconnection import connection_pool, redacted
from .redismoderation import moderate, sweep
from .redisscheme import EPOCH_KEY, SCRIPTS
from .redissubscriber import Subscriber

__all__ = [
    "RETRY_AFTER_FAILURE", "UNREACHABLE", "Answer", "AskAgain", "EpochChanged", "FillFailed",
    "FilledFrom", "RedisLog", "Refresh", "SweepDue", "Work",
]

logger = logging.getLogger(__name__)

UNREACHABLE = "storage unreachable"
RETRY_AFTER_FAILURE = 1.0
"""Seconds after a failed batch during which requests fail at once instead of waiting for Redis again."""
_pack: Callable[[tuple[Any, ...]], bytes] = hiredis.pack_command  # (its stub takes 1-tuples only)
_GET_EPOCH = _pack(("GET", EPOCH_KEY))
_READ_SIZE = 65536
_UNREAD = object()
"""The reply to a command that was sent, or may have been, and not read (the connection failed first)."""


class RedisLog:
    """The storage thread's side: the core's requests, presence, fills and subscriptions, in batches.

    ``origin`` names this process in presence entries and news (random unless given).
    """

    def __init__(self, settings: RedisSettings, origin: str | None = None) -> None:
        self.settings = settings
        self.origin = origin or secrets.token_hex(6)
        self._ttl = str(max(1, round(settings.presence_ttl * 1000)))
        self._client = redis.Redis(connection_pool=connection_pool(settings))
        self.subscriber = Subscriber(settings, self.origin)
        self._epoch: bytes | None = None
        self._numbers = itertools.count(1)
        self._unanswered: list[Numbered] = []  # talks sent whose answer was not read, oldest first
        self._failed_at = -RETRY_AFTER_FAILURE
        self._window = EVICT_WINDOW
        self.reachable = False
        """Whether Redis answered the last batch or ping (metrics: the commands' connection)."""

    @property
    def name(self) -> str:
        return redacted(self.settings.url)

    def open(self) -> None:
        """At start: check that Redis answers and take its epoch (`RedisError` if it cannot be reached)."""
        self._epoch = self._take_epoch(None)
        self.reachable = True
        try:  # (a managed Redis may not answer CONFIG: its default then)
            setting: Any = self._client.config_get("stream-node-max-entries")
            entries = int(setting.get("stream-node-max-entries", 0))
        except (RedisError, ValueError):
            entries = 0
        self._window = entries if entries > 0 else EVICT_WINDOW

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
            logger.warning("Redis %s: stopping with %d messages sent to it and never answered: their senders were "
                        "not told whether they were stored", self.name, len(self._unanswered))
        self.subscriber.stop()
        self._client.close()
        self._client.connection_pool.disconnect()  # (a pool given to a client is not closed with it)

    def failed(self, batch: Sequence[Work], reason: str) -> list[Answer]:
        return [answer for work in batch if (answer := failure(work, reason)) is not None]

    def run(self, batch: Sequence[Work]) -> list[Answer]:
        answers: list[Answer] = []
        pending: list[Command | LogFailed] = []
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
            if isinstance(work, Forget):  # (the core no longer holds the room: stop listening to it)
                self.subscriber.unsubscribe(work.join_key)
            elif isinstance(work, Moderate | Expire):  # after what comes before it
                answers.extend(self._commands(pending))
                pending = []
                answers.append(self._moderate(work) if isinstance(work, Moderate) else SweepDue(work.before))
            elif unconfirmed and _opens_a_room(work) and work.join_key in unconfirmed:
                # Read now, the room could miss what is published before the subscription is in place.
                pending.append(LogFailed(work.ticket, UNREACHABLE))
            else:
                pending.append(work)
        if subscribing:
            self._subscribe(subscribing)
        answers.extend(self._commands(pending))
        return answers

    def _moderate(self, request: Moderate) -> Changed | Refused | LogFailed:
        """A change of a room, judged and applied now (`redismoderation.moderate`)."""
        if time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE:
            return LogFailed(request.ticket, UNREACHABLE)
        retention = self.settings.retention
        try:
            try:
                return moderate(self._client, request, retention, self.origin, self._window)
            except NoScriptError:  # Redis restarted (its script cache is empty): nothing ran
                self._load_scripts()
                return moderate(self._client, request, retention, self.origin, self._window)
        except ResponseError as error:
            logger.error("Redis: %s", error)
            return LogFailed(request.ticket, INCONSISTENT)
        except (RedisError, OSError) as error:  # (the change may have been applied: its news says so)
            self._failed(error)
            return LogFailed(request.ticket, UNREACHABLE)

    def sweep(self, before: float) -> None:
        """Retention (`Expire`), on a thread of its own (the client's pool is thread-safe): what it erases and ends is
        published, and heard by every process holding those rooms, this one included."""
        started = time.monotonic()
        try:
            try:
                swept = sweep(self._client, before, self.origin, self.settings.retention, self._window)
            except NoScriptError:
                self._load_scripts()
                swept = sweep(self._client, before, self.origin, self.settings.retention, self._window)
        except (RedisError, OSError) as error:
            logger.warning("Redis %s: retention's sweep stopped (%s); the next one carries on", self.name, error)
            return
        if swept:
            logger.info("Redis %s: retention looked at %d rooms in %.3f s", self.name, swept,
                        time.monotonic() - started)

    def _subscribe(self, join_keys: list[str]) -> set[str]:
        """Subscribe; the rooms not confirmed in time (every one at once while Redis is failing)."""
        failing = time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE
        unconfirmed = self.subscriber.subscribe(join_keys, wait=not failing)
        if unconfirmed and not failing:
            logger.warning("Redis %s: %d subscriptions not confirmed within %gs; joining them fails for now",
                           self.name, len(unconfirmed), self.settings.timeout)
        return unconfirmed

    def _commands(self, work: list[Command | LogFailed]) -> list[Answer]:
        """The answers to ``work`` in its order (a `LogFailed` in it is an answer already)."""
        commands = [item for item in work if not isinstance(item, LogFailed)]
        answers, results = self._results(commands)
        replies = iter(results)
        for item in work:
            answer = item if isinstance(item, LogFailed) else next(replies)
            if answer is not None:
                answers.append(answer)
        return answers

    def _results(self, work: list[Command]) -> tuple[list[Answer], list[Answer | None]]:
        """What comes before the answers (the epoch's change, answers to talks asked again), and each command's
        answer (None: it has none, or it is a talk whose answer was not read: asked again later)."""
        if not work and not self._unanswered:
            return [], []
        if time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE:
            return [], [failure(item, UNREACHABLE) for item in work]  # (nothing sent: the unanswered wait)
        again = self._unanswered
        sent: list[Sent] = [*again, *(Numbered(item, next(self._numbers)) if isinstance(item, Append) else item
                                       for item in work)]
        try:
            replies, lost = self._execute(sent)
            if lost is None and any(isinstance(reply, NoScriptError) for reply in replies):
                # Redis restarted (its script cache is empty): none of the batch's scripts ran
                self._load_scripts()
                replies, lost = self._execute(sent)
        except (RedisError, OSError) as error:  # no connection: nothing was sent
            self._failed(error)
            return [], [failure(item, UNREACHABLE) for item in work]
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
        unanswered: list[Numbered] = []
        for index, item in enumerate(sent):
            reply = replies[index + 1] if index + 1 < len(replies) else _UNREAD
            if reply is not _UNREAD:
                answer = answer_of(item.append if isinstance(item, Numbered) else item, reply, self.origin)
            elif isinstance(item, Numbered):
                unanswered.append(item)  # it may have reached Redis: only Redis can say whether it stored it
                answer = None
            else:
                answer = failure(item, UNREACHABLE)
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
        logger.warning("Redis %s: %s; requests fail until it answers%s", self.name, error or type(error).__name__,
                       waiting)

    def _execute(self, sent: list[Sent]) -> tuple[list[Any], Exception | None]:
        """Redis's epoch and the commands, as one pipeline on one connection: the replies read (an error reply as
        its exception), and why the rest were not (None: all were). Raises if no connection is to be had: then
        nothing was sent."""
        pool = self._client.connection_pool
        connection: Any = pool.get_connection()  # (Any: the library's connection classes are untyped)
        replies: list[Any] = []
        try:
            floor = min((item.number for item in sent if isinstance(item, Numbered)), default=0)
            settings, origin, ttl = self.settings, self.origin, self._ttl
            # One C call per command and one write: the client's own packing costs more than the rest of a batch.
            pack = _pack
            packed = [_GET_EPOCH, *(pack(command(item, floor, settings, origin, ttl)) for item in sent)]
            connection.send_packed_command([b"".join(packed)], check_health=False)
            # Read by a reader of our own, each recv's replies parsed in one go: redis-py's read_response is a
            # call chain per reply. (Nothing else is on the connection while we hold it: only our replies come.)
            sock, reader = connection._sock, hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)
            while len(replies) < len(packed):
                reply = reader.gets()
                if reply is False:
                    data = sock.recv(_READ_SIZE)
                    if not data:
                        raise ConnectionError("Connection closed by server.")
                    reader.feed(data)
                elif isinstance(reply, ResponseError):
                    replies.append(connection._parser.parse_error(reply.args[0]))  # (NoScriptError, …)
                else:
                    replies.append(reply)
        except (RedisError, OSError) as error:
            connection.disconnect()
            return replies, error
        finally:
            pool.release(connection)
        return replies, None

    def _take_epoch(self, seen: bytes | None) -> bytes:
        """Redis's epoch, set now if it has none (a first start, or data lost); a change is logged loudly."""
        self._client.set(EPOCH_KEY, secrets.token_hex(8), nx=True)
        epoch = self._client.get(EPOCH_KEY)
        assert isinstance(epoch, bytes)
        if self._epoch is not None and epoch != self._epoch:
            logger.critical(
                "Redis %s came back without its data (epoch %s, was %s): every room this process held is gone "
                "from it; their members are closed with 1012 and rejoin what Redis has now. Configure Redis "
                "with appendonly yes to keep rooms across its restarts.",
                self.name, epoch.decode(), self._epoch.decode(),
            )
        self._load_scripts()
        return epoch

    def _load_scripts(self) -> None:
        for source, _ in SCRIPTS.values():
            self._client.script_load(source)

def _opens_a_room(work: Work) -> TypeGuard[Load | AddUser]:
    """A request that reads a room the process begins to hold: the subscription asked before it must be in place."""
    return isinstance(work, Load) or (isinstance(work, AddUser) and work.created is not None)
