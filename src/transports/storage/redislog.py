"""The room log in Redis, shared by every chat-server process started with the same ``--redis``.

Its keys and Lua scripts are in `redisscheme`.

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

import itertools
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeGuard

import redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from chatcore import (
    AddUser,
    Append,
    Appended,
    Fill,
    Filled,
    Forget,
    History,
    HistoryRead,
    KeyTaken,
    Load,
    Loaded,
    LogFailed,
    LoggedTalk,
    LogRequest,
    LogResult,
    NameSaved,
    Presence,
    PresenceSnapshot,
    Rename,
    SavedRoom,
    Subscribe,
    UserAdded,
)

from ..config import RedisSettings
from .redisconnection import connection_pool, redacted
from .redisscheme import (
    EPOCH_KEY,
    SCRIPTS,
    SENT_TTL_MS,
    channel,
    ids_key,
    room_key,
    sent_key,
    talks_key,
    users_key,
    who_key,
)
from .redissubscriber import Subscriber

logger = logging.getLogger(__name__)

UNREACHABLE = "storage unreachable"
INCONSISTENT = "storage inconsistent"
RETRY_AFTER_FAILURE = 1.0
"""Seconds after a failed batch during which requests fail at once instead of waiting for Redis again."""


# What goes to the storage thread besides the core's requests, and what comes back besides their results.

@dataclass(frozen=True, slots=True)
class Refresh:
    """Renew the presence of this process's users in the room, drop what expired, and read who is in it."""

    join_key: str
    user_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AskAgain:
    """Ask Redis again about the talks it was sent and has not answered (a batch of its own while rooms are quiet)."""


@dataclass(frozen=True, slots=True)
class FillFailed:
    """Redis could not be reached for a `Fill`: the broker asks again a little later."""

    fill: Fill


@dataclass(frozen=True, slots=True)
class EpochChanged:
    """Redis came back without the data it had: every room held in memory is gone from it."""


Work: TypeAlias = LogRequest | Fill | Subscribe | Forget | Presence | Refresh | AskAgain
Answer: TypeAlias = LogResult | FillFailed | EpochChanged
"""(A `Fill` has its `Filled`; a `Presence` no answer; a `Refresh` its `PresenceSnapshot`, or none if it failed.)"""
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
            logger.warning("Redis %s: stopping with %d messages sent to it and never answered: their senders were "
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
            if isinstance(work, Forget):  # (the core no longer holds the room: stop listening to it)
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
            logger.warning("Redis %s: %d subscriptions not confirmed within %gs; joining them fails for now",
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
        logger.warning("Redis %s: %s; requests fail until it answers%s", self.name, error or type(error).__name__,
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
            logger.critical(
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
            return Filled(key, item.after, tuple(_talk(key, entry) for entry in reply))
        if isinstance(item, Presence | Refresh):
            if isinstance(reply, Exception):
                logger.error("Redis: %s", reply)
                return None
            if isinstance(item, Presence) or reply is None:
                return None  # (a Refresh of a room Redis does not have)
            seq, who = reply
            return self.snapshot(key, seq, who)
        if isinstance(reply, Exception):
            logger.error("Redis: %s", reply)
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
