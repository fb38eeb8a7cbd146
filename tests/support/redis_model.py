"""A model of the Redis the chat shares rooms through: its scripts, streams and pub/sub, in memory, stepped by hand.

It answers what `transports.storage.redislog`'s Lua scripts answer (the
real-Redis tests check the two against each other), and it lets a test decide
when each process's requests run, when each subscriber hears what was
published, which messages its connection loses, and when Redis restarts
(with its data or without). `ModelBroker` is one process's connection to it:
the `chatcore.shared.Broker` the process's `SharedChat` talks to.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from chatcore import (
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


@dataclass
class _Room:
    created: float
    last_user_id: int = 0
    last_offset: int = 0
    stream: list[LoggedTalk] = field(default_factory=list)


@dataclass(frozen=True)
class Filled:
    """The answer to a fill: the room's talks after ``fill.after``."""

    fill: Fill
    talks: list[LoggedTalk]


@dataclass(frozen=True)
class Heard:
    """A message on a subscriber's connection: a talk, or a subscription's confirmation (``talk`` None)."""

    join_key: str
    talk: LoggedTalk | None


class RedisModel:
    """Rooms (meta, stream), the epoch, and who listens to which room's channel."""

    def __init__(self, retention: int = 1_000_000) -> None:
        self.retention = retention
        self.rooms: dict[str, _Room] = {}
        self.epoch = 1
        self.up = True
        self.subscribers: list[ModelBroker] = []

    def add_user(self, request: AddUser) -> LogResult:
        room = self.rooms.get(request.join_key)
        if request.created is not None:
            if room is not None:
                return KeyTaken(request.ticket)
            room = self.rooms[request.join_key] = _Room(request.created)
        elif room is None:
            return LogFailed(request.ticket, "storage inconsistent")
        room.last_user_id += 1
        return UserAdded(request.ticket, room.last_user_id)

    def append(self, request: Append) -> LogResult:
        room = self.rooms.get(request.join_key)
        if room is None:
            return LogFailed(request.ticket, "storage inconsistent")
        room.last_offset += 1
        talk = LoggedTalk(request.join_key, room.last_offset, request.user_id, request.time, request.payload)
        room.stream.append(talk)
        del room.stream[: -self.retention]
        for subscriber in self.subscribers:
            if subscriber.connected and request.join_key in subscriber.channels:
                subscriber.inbox.append(Heard(request.join_key, talk))
        return Appended(request.ticket, talk)

    def load(self, request: Load) -> LogResult:
        room = self.rooms.get(request.join_key)
        if room is None:
            return Loaded(request.ticket, None)
        recent = tuple(room.stream[-request.recent:]) if request.recent else ()
        return Loaded(request.ticket, SavedRoom(request.join_key, room.last_offset, recent))

    def range(self, join_key: str, after: int) -> list[LoggedTalk]:
        room = self.rooms.get(join_key)
        return [] if room is None else [talk for talk in room.stream if talk.offset > after]

    def restart(self, *, keep_data: bool) -> None:
        """Every connection drops; without its data, Redis comes back empty under a new epoch."""
        if not keep_data:
            self.rooms.clear()
            self.epoch += 1
        for subscriber in self.subscribers:
            subscriber.disconnect()


class ModelBroker:
    """One process's connection to the model: what it asked (run one at a time by `step`) and what it hears."""

    def __init__(self, redis: RedisModel) -> None:
        self.redis = redis
        redis.subscribers.append(self)
        self.queue: deque[tuple[str, object]] = deque()
        """Work asked and not run yet: ("subscribe" | "unsubscribe", key), ("request", LogRequest), ("fill", Fill)."""
        self.results: deque[LogResult | Filled] = deque()
        """Answers not handed back yet, in order."""
        self.inbox: deque[Heard] = deque()
        self.channels: set[str] = set()
        self.connected = True
        self.epoch = redis.epoch

    # chatcore.shared.Broker

    def request(self, request: LogRequest) -> None:
        self.queue.append(("request", request))

    def subscribe(self, join_key: str) -> None:
        self.queue.append(("subscribe", join_key))

    def unsubscribe(self, join_key: str) -> None:
        self.queue.append(("unsubscribe", join_key))

    def fill(self, fill: Fill) -> None:
        self.queue.append(("fill", fill))

    # Stepping

    def step(self) -> None:
        """Run the oldest work asked; a request while Redis is down fails, a fill waits for it."""
        kind, item = self.queue[0]
        if not self.redis.up and kind == "fill":
            return
        self.queue.popleft()
        if kind == "subscribe":
            assert isinstance(item, str)
            self.channels.add(item)
            if self.connected:
                self.inbox.append(Heard(item, None))
        elif kind == "unsubscribe":
            assert isinstance(item, str)
            self.channels.discard(item)
        elif kind == "fill":
            assert isinstance(item, Fill)
            self.results.append(Filled(item, self.redis.range(item.join_key, item.after)))
        else:
            assert isinstance(item, AddUser | Append | Load)
            self.results.append(self._run(item))

    def _run(self, request: LogRequest) -> LogResult:
        if not self.redis.up:
            return LogFailed(request.ticket, "storage unreachable")
        if isinstance(request, AddUser):
            return self.redis.add_user(request)
        if isinstance(request, Append):
            return self.redis.append(request)
        return self.redis.load(request)

    def disconnect(self) -> None:
        """The subscriber's connection dropped: what it had not read is gone."""
        self.connected = False
        self.inbox.clear()

    def reconnect(self) -> bool:
        """Connect again and subscribe to every channel again (confirmations follow); True if the epoch changed."""
        self.connected = True
        self.inbox.extend(Heard(key, None) for key in sorted(self.channels))
        changed, self.epoch = self.epoch != self.redis.epoch, self.redis.epoch
        return changed
