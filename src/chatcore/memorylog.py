"""The room log kept in memory: a backend without I/O, for a server without a store and for the core's tests.

`MemoryLog.perform` takes any log action of `chatcore.actions` and returns
its results at once: the same results a durable log gives after its commit,
so that a talk takes one way through the core whether rooms are kept in
memory, in SQLite or in Redis. There is no other process to hear from: a
`Subscribe` or a `Forget` has nothing to do.

Being the only store of names and resume tokens, it bounds them: a user is
remembered from its `AddUser` until it has left (a `Presence` that says so)
and ``remembered_users`` others have left after it.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import NamedTuple, assert_never

from .actions import AddUser, Append, Fill, Forget, History, Load, LogAction, LogRequest, Presence, Rename, Subscribe
from .limits import CoreLimits
from .results import (
    Appended,
    Filled,
    HistoryRead,
    KeyTaken,
    Loaded,
    LogAnswer,
    LogFailed,
    LoggedTalk,
    LogResult,
    NameSaved,
    SavedRoom,
    UserAdded,
)


class _User(NamedTuple):
    token_hash: str | None
    name: str | None


@dataclass(slots=True)
class _Room:
    talks: deque[LoggedTalk]
    last_user_id: int = field(default=0)
    last_offset: int = field(default=0)
    users: dict[int, _User] = field(default_factory=dict)
    """Users with a token or a name: those connected, and those remembered after they left."""
    tokens: dict[str, int] = field(default_factory=dict)
    """Token hash → user id, for the users in ``users``."""
    absent: OrderedDict[int, None] = field(default_factory=OrderedDict)
    """The users in ``users`` that have left, the one that left longest ago first."""
    talk_ids: dict[tuple[int, str], LoggedTalk] = field(default_factory=dict)
    """(user id, talk id) → the talk, for the talks still kept, oldest first."""


class MemoryLog:
    """Every room of one process, its latest ``history_limit`` talks and the users it remembers; lost at exit."""

    def __init__(self, history_limit: int, remembered_users: int = CoreLimits().remembered_users) -> None:
        self._history_limit = history_limit
        self._remembered_users = remembered_users
        self._rooms: dict[str, _Room] = {}

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    def perform(self, action: LogAction) -> list[LogResult]:
        """Do a log action: its result (none for a notice)."""
        if isinstance(action, LogRequest):
            return [self.answer(action)]
        if isinstance(action, Presence):
            if not action.here:
                self.left(action.join_key, action.user_id)
            return []
        if isinstance(action, Subscribe | Forget):
            return []
        if isinstance(action, Fill):
            room = self._rooms.get(action.join_key)
            talks = () if room is None else tuple(talk for talk in room.talks if talk.offset > action.after)
            return [Filled(action.join_key, action.after, talks)]
        assert_never(action)

    def left(self, join_key: str, user_id: int) -> None:
        """The user has no connection to the room any more: remembered among the last ``remembered_users`` that
        left, then forgotten (its token no longer resumes)."""
        room = self._rooms.get(join_key)
        if room is None or user_id not in room.users:
            return
        absent = room.absent
        absent[user_id] = None
        absent.move_to_end(user_id)
        while len(absent) > self._remembered_users:
            gone, _ = absent.popitem(last=False)
            token_hash = room.users.pop(gone).token_hash
            if token_hash is not None:
                del room.tokens[token_hash]

    def append(
        self, join_key: str, user_id: int, time: float, payload: str, name: str | None = None,
        talk_id: str | None = None,
    ) -> tuple[LoggedTalk, bool]:
        """Append a talk to an existing room (else `KeyError`): the talk, with its offset, and whether a duplicate.

        A talk whose user and id the room has already is not appended: the
        one it has is returned, with True.
        """
        room = self._rooms[join_key]
        if talk_id is not None:
            kept = room.talk_ids.get((user_id, talk_id))
            if kept is not None:
                return kept, True
        room.last_offset = offset = room.last_offset + 1
        talk = LoggedTalk(join_key, offset, user_id, time, payload, name, talk_id)
        talks = room.talks
        if room.talk_ids and len(talks) == talks.maxlen:
            dropped = talks[0]
            if dropped.talk_id is not None:
                room.talk_ids.pop((dropped.user_id, dropped.talk_id), None)
        talks.append(talk)
        if talk_id is not None and talks.maxlen:
            room.talk_ids[user_id, talk_id] = talk
        return talk, False

    def answer(self, request: LogRequest) -> LogAnswer:
        """Do ``request`` and return its result."""
        if isinstance(request, Append):
            if request.join_key not in self._rooms:
                return LogFailed(request.ticket, "storage inconsistent")
            talk, duplicate = self.append(
                request.join_key, request.user_id, request.time, request.payload, request.name, request.talk_id
            )
            return Appended(request.ticket, talk, duplicate)
        if isinstance(request, AddUser):
            room = self._rooms.get(request.join_key)
            if request.created is not None:
                if room is not None:
                    return KeyTaken(request.ticket)
                room = self._rooms[request.join_key] = _Room(deque(maxlen=self._history_limit))
            elif room is None:
                return LogFailed(request.ticket, "storage inconsistent")
            user_id = None if request.resume_hash is None else room.tokens.get(request.resume_hash)
            resumed = user_id is not None
            if user_id is None:
                room.last_user_id = user_id = room.last_user_id + 1
                kept = room.users.get(user_id)  # (named by a `Rename` before it was handed out)
                if request.token_hash is not None or request.name is not None or kept is not None:
                    name = request.name if request.name is not None or kept is None else kept.name
                    room.users[user_id] = _User(request.token_hash, name)
                    if request.token_hash is not None:
                        room.tokens[request.token_hash] = user_id
            else:
                room.absent.pop(user_id, None)
                if request.name is not None:
                    room.users[user_id] = room.users[user_id]._replace(name=request.name)
            user = room.users.get(user_id)
            return UserAdded(request.ticket, user_id, resumed, None if user is None else user.name)
        if isinstance(request, Load):
            room = self._rooms.get(request.join_key)
            if room is None:
                return Loaded(request.ticket, None)
            recent = tuple(room.talks)[-request.recent:] if request.recent else ()
            return Loaded(request.ticket, SavedRoom(request.join_key, room.last_offset, recent))
        if isinstance(request, Rename):
            room = self._rooms.get(request.join_key)
            if room is None:
                return LogFailed(request.ticket, "storage inconsistent")
            user = room.users.get(request.user_id)
            room.users[request.user_id] = _User(None if user is None else user.token_hash, request.name)
            return NameSaved(request.ticket)
        if isinstance(request, History):
            room = self._rooms.get(request.join_key)
            if room is None:
                return LogFailed(request.ticket, "storage inconsistent")
            earlier = [talk for talk in room.talks if talk.offset < request.before]
            chosen = earlier[-request.limit:]
            older = len(earlier) > len(chosen)
            return HistoryRead(request.ticket, tuple(chosen), older)
        assert_never(request)
