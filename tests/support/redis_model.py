"""A model of the Redis the chat shares rooms through: its scripts, streams and pub/sub, in memory, stepped by hand.

It answers what `transports.storage.redisscheme`'s Lua scripts answer, and
publishes what they publish (the real-Redis tests check the two against
each other): talks, presence, and changes of rooms, judged by the same rules
(`chatcore.control`) and read back by a fill as the real log reads them
(`redischanges.stored_change`: an edit of a talk deleted since is a delete);
retention (`Expire`) sweeps every room at once. It lets a test decide when
each process's requests run,
when each subscriber hears what was published, which messages its
connection loses, when Redis restarts (with its data or without) and what
Redis's clock says (``now``, in ms: presence entries expire by it).
`ModelBroker` is one process's connection to it: the backend that
performs the process's core's log actions.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field, replace

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
    LogAction,
    LogFailed,
    LoggedTalk,
    LogRequest,
    LogResult,
    NameSaved,
    Presence,
    PresenceHeard,
    PresenceSnapshot,
    Rename,
    SavedRoom,
    Subscribe,
    UserAdded,
)
from chatcore.actions import Expire, Moderate, Typing
from chatcore.control import Delete, Edit, End, RoomControl, refuse_join
from chatcore.memorylog import decide
from chatcore.problems import ENDED, TAKEN
from chatcore.results import Changed, Expired, LoggedChange, Refused

UNREACHABLE = "storage unreachable"
INCONSISTENT = "storage inconsistent"
TTL = 15_000
"""A process's presence ttl by default, in ms (``--presence-ttl 15``)."""


@dataclass
class _Room:
    created: float
    last_user_id: int = 0
    last_offset: int = 0
    stream: list[LoggedTalk] = field(default_factory=list)
    pseq: int = 0
    names: dict[int, str] = field(default_factory=dict)
    """chat:{K}:users "n:<user>"."""
    tokens: dict[str, int] = field(default_factory=dict)
    """chat:{K}:users "t:<token hash>"."""
    subjects: dict[str, int] = field(default_factory=dict)
    """chat:{K}:users "s:<subject>"."""
    signed: dict[int, str] = field(default_factory=dict)
    """chat:{K}:users "S:<user>"."""
    name_keys: dict[int, str] = field(default_factory=dict)
    """chat:{K}:users "K:<user>": the key of a signed-in user's name."""
    held: dict[str, int] = field(default_factory=dict)
    """chat:{K}:users "k:<name key>": how many signed-in users hold it."""
    ids: dict[tuple[int, str], int] = field(default_factory=dict)
    """chat:{K}:ids: (user, talk id) → offset, for the last ``retention`` offsets."""
    who: dict[tuple[str, int], int] = field(default_factory=dict)
    """chat:{K}:who: (origin, user) → when it expires (ms)."""
    control: RoomControl = field(default_factory=RoomControl)
    """The room hash's cseq, title and locked; chat:{K}:mods and chat:{K}:bans."""
    changes: list[LoggedChange] = field(default_factory=list)
    """chat:{K}:changes, as made (a fill reads each edit or delete back with its talk as it is then)."""
    first: int = 0
    """The room hash's ``first``: the first talk retention kept (0: it erased none)."""

    def hold(self, user_id: int, name_key: str) -> None:
        """The signed-in user holds ``name_key`` instead of the key it held (the scripts' ``hold``)."""
        old = self.name_keys.get(user_id)
        if old == name_key:
            return
        if old is not None:
            self.held[old] -= 1
            if self.held[old] <= 0:
                del self.held[old]
        self.name_keys[user_id] = name_key
        self.held[name_key] = self.held.get(name_key, 0) + 1

    def kept(self, offset: int) -> LoggedTalk | None:
        """The talk at ``offset`` as it is now, if the stream (or moved) has it."""
        stream = self.stream
        index = offset - stream[0].offset if stream else -1
        return stream[index] if 0 <= index < len(stream) else None


@dataclass(frozen=True)
class Refresh:
    """A process renews its users' presence in a room (``user_ids``) and reads who is there."""

    join_key: str
    user_ids: tuple[int, ...]


@dataclass(frozen=True)
class Heard:
    """A message on a subscriber's connection: a talk, presence news, a change, retention's news, or a subscription's
    confirmation (none of them)."""

    join_key: str
    talk: LoggedTalk | None = None
    presence: PresenceHeard | None = None
    change: LoggedChange | None = None
    expired: Expired | None = None


class RedisModel:
    """Rooms (meta, stream, users, ids, who), the epoch, the clock, and who listens to which room's channel."""

    def __init__(self, retention: int = 1_000_000) -> None:
        self.retention = retention
        self.rooms: dict[str, _Room] = {}
        self.epoch = 1
        self.up = True
        self.now = 1_000_000
        """Redis's clock (TIME), in ms."""
        self.subscribers: list[ModelBroker] = []
        self.ended: dict[str, LoggedChange] = {}
        """chat:{K}:ended: the end of each room that ended (kept for a day: here, until Redis loses its data)."""
        self.published: list[LoggedTalk | PresenceHeard | LoggedChange | Expired] = []
        """Everything the scripts published, in order (for the tests that compare with the real scripts)."""
        self.versions: dict[tuple[str, int], list[LoggedTalk]] = {}
        """(Not Redis's: the tests' record) every version each talk had, as sent first, by room and offset."""
        self.expired: dict[str, int] = {}
        """(The tests' record) the first talk retention kept in each room it erased talks of."""
        self._origins = itertools.count(1)

    def new_origin(self) -> str:
        return f"o{next(self._origins)}"

    # The scripts

    def add_user(self, request: AddUser) -> LogResult:
        room = self.rooms.get(request.join_key)
        if request.created is not None:
            if room is not None:
                return KeyTaken(request.ticket)
            room = self.rooms[request.join_key] = _Room(request.created)
        elif room is None:
            return LogFailed(request.ticket, INCONSISTENT)
        subject = request.subject
        if subject is not None:  # (the subject alone: a resume token never makes or moves an identity)
            user_id = room.subjects.get(subject)
        else:
            user_id = None if request.resume_hash is None else room.tokens.get(request.resume_hash)
        signed = user_id in room.signed
        refusal = None if request.created is not None else refuse_join(room.control, user_id)
        if refusal is not None:
            return Refused(request.ticket, refusal)
        if subject is None and not signed and request.name_key in room.held:
            return Refused(request.ticket, TAKEN)
        resumed = user_id is not None
        if user_id is None:
            room.last_user_id = user_id = room.last_user_id + 1
            if request.token_hash is not None:
                room.tokens[request.token_hash] = user_id
        if subject is not None:
            room.subjects[subject] = user_id
            room.signed[user_id] = subject
        if request.name is not None and (subject is not None or not signed):
            room.names[user_id] = request.name
        if subject is not None and request.name_key is not None:
            room.hold(user_id, request.name_key)
        return UserAdded(request.ticket, user_id, resumed, room.names.get(user_id), user_id in room.signed)

    def append(self, request: Append) -> LogResult:
        room = self.rooms.get(request.join_key)
        if room is None:
            return LogFailed(request.ticket, INCONSISTENT)
        if request.talk_id is not None:
            kept = room.ids.get((request.user_id, request.talk_id))
            stored = [talk for talk in room.stream if talk.offset == kept]
            if stored:
                return Appended(request.ticket, stored[0], duplicate=True)
        room.last_offset += 1
        talk = LoggedTalk(
            request.join_key, room.last_offset, request.user_id, request.time, request.payload, request.name,
            request.talk_id, verified=request.verified,
        )
        room.stream.append(talk)
        self.versions[request.join_key, talk.offset] = [talk]
        del room.stream[: -self.retention]
        if request.talk_id is not None:
            room.ids[request.user_id, request.talk_id] = talk.offset
        oldest = room.last_offset - self.retention
        if oldest > 0:
            room.ids = {key: offset for key, offset in room.ids.items() if offset > oldest}
        self._publish(request.join_key, talk)
        return Appended(request.ticket, talk)

    def load(self, request: Load, origin: str) -> LogResult:
        room = self.rooms.get(request.join_key)
        if room is None:
            return Loaded(request.ticket, None)
        recent = tuple(room.stream[-request.recent:]) if request.recent else ()
        presence = self._snapshot(request.join_key, room, origin)
        return Loaded(request.ticket, SavedRoom(request.join_key, room.last_offset, recent, presence, room.control))

    def rename(self, request: Rename, origin: str) -> LogResult:
        room = self.rooms.get(request.join_key)
        if room is None:
            return LogFailed(request.ticket, INCONSISTENT)
        if request.name_key is not None:
            if request.user_id in room.signed:
                room.hold(request.user_id, request.name_key)
            elif request.name_key in room.held:
                return Refused(request.ticket, TAKEN)
        room.names[request.user_id] = request.name
        self._news(request.join_key, room, origin, request.user_id, None)
        return NameSaved(request.ticket, room.pseq)

    def history(self, request: History) -> LogResult:
        room = self.rooms.get(request.join_key)
        if room is None:
            return LogFailed(request.ticket, INCONSISTENT)
        earlier = [talk for talk in room.stream if talk.offset < request.before]
        chosen = earlier[-request.limit:]
        return HistoryRead(request.ticket, tuple(chosen), len(earlier) > len(chosen))

    def presence(self, presence: Presence, origin: str, ttl: int = TTL) -> None:
        room = self.rooms.get(presence.join_key)
        if room is None:
            return
        entry = (origin, presence.user_id)
        if presence.here:
            room.who[entry] = self.now + ttl
        elif room.who.pop(entry, None) is None:
            return
        self._news(presence.join_key, room, origin, presence.user_id, presence.here)

    def refresh(self, refresh: Refresh, origin: str, ttl: int = TTL) -> PresenceSnapshot | None:
        room = self.rooms.get(refresh.join_key)
        if room is None:
            return None
        for user_id in refresh.user_ids:
            entry = (origin, user_id)
            new = entry not in room.who
            room.who[entry] = self.now + ttl
            if new:
                self._news(refresh.join_key, room, origin, user_id, True)
        # In ZRANGEBYSCORE's order: by expiry, then by member ("<origin>:<user>", as bytes).
        for entry, expiry in sorted(room.who.items(), key=lambda item: (item[1], f"{item[0][0]}:{item[0][1]}")):
            if expiry <= self.now:
                del room.who[entry]
                self._news(refresh.join_key, room, entry[0], entry[1], False)
        return self._snapshot(refresh.join_key, room, origin)

    def moderate(self, request: Moderate) -> LogResult:
        """`CONTROL`, `chatcore.control.judge` and `CHANGE`, in one step (the real log's compare-and-set never loses
        here: nothing runs between them)."""
        key, change = request.join_key, request.change
        room = self.rooms.get(key)
        if room is None:
            return Refused(request.ticket, ENDED)
        talk = room.kept(change.offset) if isinstance(change, Edit | Delete) else None
        decided = decide(request, room.control, talk, room.last_user_id)
        if isinstance(decided, Refused):
            return decided
        room.control, talk = decided
        seq = room.control.seq
        if talk is not None:
            room.stream[talk.offset - room.stream[0].offset] = talk
            self.versions[key, talk.offset].append(talk)
        entry = LoggedChange(key, seq, room.last_offset, request.user_id, request.time, change, talk)
        if isinstance(change, End):
            self._end(key, entry)
        else:
            room.changes.append(entry)
            del room.changes[: -self.retention]
            self._publish(key, entry)
        return Changed(request.ticket, entry)

    def expire(self, before: float) -> None:
        """The sweep (`redismoderation.sweep`) over every room: what it erases and ends is published."""
        for key, room in sorted(self.rooms.items()):
            if (room.stream[-1].time if room.stream else room.created) < before:
                self._end(key, LoggedChange(key, room.control.seq + 1, room.last_offset, 0, before, End()))
            elif room.stream and room.stream[0].time < before:
                while room.stream[0].time < before:
                    dropped = room.stream.pop(0)
                    if dropped.talk_id is not None:
                        room.ids.pop((dropped.user_id, dropped.talk_id), None)
                room.first = self.expired[key] = room.stream[0].offset
                self._publish(key, Expired(key, room.first))

    def fill(self, fill: Fill) -> list[LogResult]:
        """`FILL`: the talks after ``fill.after`` as they are now, the changes after ``fill.changes_after`` read back
        from the changes stream; after the room's first talk kept, if retention erased some (as the broker hands
        them to the core)."""
        key = fill.join_key
        room = self.rooms.get(key)
        if room is None:
            end = self.ended.get(key)
            return [Filled(key, fill.after, (), (end,) if end is not None and end.seq > fill.changes_after else ())]
        changes = tuple(stored(room, entry) for entry in room.changes if entry.seq > fill.changes_after)
        filled = Filled(key, fill.after, tuple(self.range(key, fill.after)), changes)
        return [Expired(key, room.first), filled] if room.first else [filled]

    def range(self, join_key: str, after: int) -> list[LoggedTalk]:
        room = self.rooms.get(join_key)
        return [] if room is None else [talk for talk in room.stream if talk.offset > after]

    def restart(self, *, keep_data: bool) -> None:
        """Every connection drops; without its data, Redis comes back empty under a new epoch."""
        if not keep_data:
            self.rooms.clear()
            self.ended.clear()
            self.epoch += 1
        for subscriber in self.subscribers:
            subscriber.disconnect()

    # Inside

    def _snapshot(self, join_key: str, room: _Room, origin: str) -> PresenceSnapshot:
        """Who is in the room (entries not expired), but for ``origin``'s own entries."""
        entries = sorted(
            (entry_origin, user_id, room.names.get(user_id))
            for (entry_origin, user_id), expiry in room.who.items()
            if expiry > self.now and entry_origin != origin
        )
        signed = frozenset(user_id for _, user_id, _ in entries if user_id in room.signed)
        return PresenceSnapshot(join_key, room.pseq, tuple(entries), signed)

    def _news(self, join_key: str, room: _Room, origin: str, user_id: int, here: bool | None) -> None:
        room.pseq += 1
        signed = here is not False and user_id in room.signed
        self._publish(
            join_key, PresenceHeard(join_key, room.pseq, origin, user_id, here, room.names.get(user_id), signed)
        )

    def _end(self, join_key: str, entry: LoggedChange) -> None:
        """Every key of the room goes; its end stays for a while, and is published."""
        del self.rooms[join_key]
        self.ended[join_key] = entry
        self._publish(join_key, entry)

    def _publish(self, join_key: str, message: LoggedTalk | PresenceHeard | LoggedChange | Expired) -> None:
        self.published.append(message)
        for subscriber in self.subscribers:
            if subscriber.connected and join_key in subscriber.channels:
                if isinstance(message, LoggedTalk):
                    subscriber.inbox.append(Heard(join_key, talk=message))
                elif isinstance(message, LoggedChange):
                    subscriber.inbox.append(Heard(join_key, change=message))
                elif isinstance(message, Expired):
                    subscriber.inbox.append(Heard(join_key, expired=message))
                elif message.origin != subscriber.origin:  # (a process drops its own news)
                    subscriber.inbox.append(Heard(join_key, presence=message))


def stored(room: _Room, entry: LoggedChange) -> LoggedChange:
    """A change as a fill reads it back: an edit or a delete with its talk as it is now (an edit of a talk deleted
    since, or no longer kept, is a delete: its text is gone)."""
    change = entry.change
    if not isinstance(change, Edit | Delete):
        return entry
    talk = room.kept(change.offset)
    if isinstance(change, Edit) and talk is not None and talk.payload is not None:
        return replace(entry, change=Edit(change.offset, talk.payload), talk=talk)
    return replace(entry, change=Delete(change.offset), talk=talk)


class ModelBroker:
    """One process's connection to the model: what it asked (run one at a time by `step`) and what it hears."""

    def __init__(self, redis: RedisModel, ttl: int = TTL) -> None:
        self.redis = redis
        self.origin = redis.new_origin()
        self.ttl = ttl
        redis.subscribers.append(self)
        self.queue: deque[tuple[str, object]] = deque()
        """Work asked and not run yet: ("subscribe" | "unsubscribe", key), ("request", LogRequest), ("fill", Fill),
        ("presence", Presence), ("refresh", Refresh), ("expire", Expire)."""
        self.results: deque[LogResult] = deque()
        """Answers not handed back yet, in order."""
        self.inbox: deque[Heard] = deque()
        self.channels: set[str] = set()
        self.connected = True
        self.epoch = redis.epoch
        self.here: dict[str, set[int]] = {}
        """The users each room has on this process, as its core said (`Presence`)."""
        self._unconfirmed: set[str] = set()
        """Rooms subscribed while the subscriber was not connected: reading them fails (as the real one does)."""

    # The backend of a core whose room log is shared

    def perform(self, action: LogAction) -> None:
        """Take a log action from the core."""
        if isinstance(action, Subscribe):
            self.subscribe(action.join_key)
        elif isinstance(action, Forget):
            self.unsubscribe(action.join_key)
        elif isinstance(action, Fill):
            self.fill(action)
        elif isinstance(action, Presence):
            self.presence(action)
        elif isinstance(action, Expire):
            self.queue.append(("expire", action))
        elif isinstance(action, Typing):
            pass  # (told by no script, kept nowhere: the model loses it, as Redis may)
        else:
            self.request(action)

    def request(self, request: LogRequest) -> None:
        self.queue.append(("request", request))

    def subscribe(self, join_key: str) -> None:
        self.queue.append(("subscribe", join_key))

    def unsubscribe(self, join_key: str) -> None:
        self.queue.append(("unsubscribe", join_key))

    def fill(self, fill: Fill) -> None:
        self.queue.append(("fill", fill))

    def presence(self, presence: Presence) -> None:
        users = self.here.setdefault(presence.join_key, set())
        if presence.here:
            users.add(presence.user_id)
        else:
            users.discard(presence.user_id)
            if not users:
                del self.here[presence.join_key]
        self.queue.append(("presence", presence))

    # What RedisBroker does besides

    def refresh(self, join_key: str | None = None) -> None:
        """Renew this process's presence in every room it has users in (or in one): every ttl/3, and when subscribed."""
        keys = list(self.here) if join_key is None else [join_key] if join_key in self.here else []
        for key in keys:
            self.queue.append(("refresh", Refresh(key, tuple(sorted(self.here[key])))))

    # Stepping

    def step(self) -> None:
        """Run the oldest work asked; a request while Redis is down fails, a fill waits for it, presence is lost."""
        kind, item = self.queue[0]
        if not self.redis.up and kind == "fill":
            return
        self.queue.popleft()
        if kind == "subscribe":
            assert isinstance(item, str)
            self.channels.add(item)
            if self.connected:
                self.inbox.append(Heard(item))
                self._unconfirmed.discard(item)
            else:  # the real subscriber waits for its connection, up to the timeout: here it does not come back
                self._unconfirmed.add(item)
        elif kind == "unsubscribe":
            assert isinstance(item, str)
            self.channels.discard(item)
        elif kind == "fill":
            assert isinstance(item, Fill)
            self.results.extend(self.redis.fill(item))
        elif kind == "expire":
            assert isinstance(item, Expire)
            if self.redis.up:  # (else the sweep fails, and the next one does its work)
                self.redis.expire(item.before)
        elif kind == "presence":
            assert isinstance(item, Presence)
            if self.redis.up:
                self.redis.presence(item, self.origin, self.ttl)
        elif kind == "refresh":
            assert isinstance(item, Refresh)
            snapshot = self.redis.refresh(item, self.origin, self.ttl) if self.redis.up else None
            if snapshot is not None:
                self.results.append(snapshot)
        else:
            assert isinstance(item, AddUser | Append | Load | Rename | History | Moderate)
            self.results.append(self._run(item))

    def _run(self, request: LogRequest) -> LogResult:
        if not self.redis.up:
            return LogFailed(request.ticket, UNREACHABLE)
        reads_a_room = isinstance(request, Load) or (isinstance(request, AddUser) and request.created is not None)
        if reads_a_room and request.join_key in self._unconfirmed:
            self._unconfirmed.discard(request.join_key)
            return LogFailed(request.ticket, UNREACHABLE)
        if isinstance(request, AddUser):
            return self.redis.add_user(request)
        if isinstance(request, Append):
            return self.redis.append(request)
        if isinstance(request, Rename):
            return self.redis.rename(request, self.origin)
        if isinstance(request, History):
            return self.redis.history(request)
        if isinstance(request, Moderate):
            return self.redis.moderate(request)
        return self.redis.load(request, self.origin)

    def disconnect(self) -> None:
        """The subscriber's connection dropped: what it had not read is gone. (A subscription's confirmation is read
        before the room is, and handed over even if the connection fails right after: it stays.)"""
        self.connected = False
        self.inbox = deque(heard for heard in self.inbox if heard == Heard(heard.join_key))

    def reconnect(self) -> bool:
        """Connect again and subscribe to every channel again (confirmations follow); True if the epoch changed."""
        self.connected = True
        self.inbox.extend(Heard(key) for key in sorted(self.channels))
        changed, self.epoch = self.epoch != self.redis.epoch, self.redis.epoch
        return changed
