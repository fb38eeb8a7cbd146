"""The room log kept in memory: the loopback a core without a store uses.

It answers every request at once, with the same results a durable log gives
after its commit, so that a talk takes one way through the core whether rooms
are kept in memory, in SQLite, or (later) in a log shared by many processes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import assert_never

from .actions import AddUser, Append, History, Load, LogRequest, Rename
from .results import Appended, HistoryRead, KeyTaken, Loaded, LogFailed, LogResult, NameSaved, SavedRoom, UserAdded
from .rooms import Talk


@dataclass(slots=True)
class _Room:
    talks: deque[Talk]
    last_user_id: int = field(default=0)
    last_offset: int = field(default=0)
    names: dict[int, str] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    """Token hash → user id."""
    talk_ids: dict[tuple[int, str], Talk] = field(default_factory=dict)
    """(user id, talk id) → the talk, for the talks still kept, oldest first."""


class MemoryLog:
    """Every room of one process and its latest ``history_limit`` talks; it ends with the process."""

    def __init__(self, history_limit: int) -> None:
        self._history_limit = history_limit
        self._rooms: dict[str, _Room] = {}

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    def append(
        self, join_key: str, user_id: int, time: float, payload: str, name: str | None = None,
        talk_id: str | None = None,
    ) -> tuple[Talk, bool]:
        """Append a talk to an existing room (else `KeyError`): the talk, with its offset, and whether a duplicate.

        A talk whose user and id the room has already is not appended: the
        one it has is returned, with True. What `answer` does for an `Append`,
        without the request and result around it: the core calls this for
        every talk it keeps in memory.
        """
        room = self._rooms[join_key]
        if talk_id is not None:
            kept = room.talk_ids.get((user_id, talk_id))
            if kept is not None:
                return kept, True
        room.last_offset = offset = room.last_offset + 1
        talk = Talk(join_key, offset, user_id, time, payload, name, talk_id)
        talks = room.talks
        if room.talk_ids and len(talks) == talks.maxlen:
            dropped = talks[0]
            if dropped.talk_id is not None:
                room.talk_ids.pop((dropped.user_id, dropped.talk_id), None)
        talks.append(talk)
        if talk_id is not None and talks.maxlen:
            room.talk_ids[user_id, talk_id] = talk
        return talk, False

    def answer(self, request: LogRequest) -> LogResult:
        """Do ``request`` and return its result."""
        if isinstance(request, Append):
            if request.join_key not in self._rooms:
                return LogFailed(request.ticket, "storage inconsistent")
            talk, duplicate = self.append(
                request.join_key, request.user_id, request.time, request.payload, request.name, request.talk_id
            )
            return Appended(request.ticket, talk.logged(), duplicate)
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
                if request.token_hash is not None:
                    room.tokens[request.token_hash] = user_id
            if request.name is not None:
                room.names[user_id] = request.name
            return UserAdded(request.ticket, user_id, resumed, room.names.get(user_id))
        if isinstance(request, Load):
            room = self._rooms.get(request.join_key)
            if room is None:
                return Loaded(request.ticket, None)
            recent = tuple(talk.logged() for talk in tuple(room.talks)[-request.recent:]) if request.recent else ()
            return Loaded(request.ticket, SavedRoom(request.join_key, room.last_offset, recent))
        if isinstance(request, Rename):
            room = self._rooms.get(request.join_key)
            if room is None:
                return LogFailed(request.ticket, "storage inconsistent")
            room.names[request.user_id] = request.name
            return NameSaved(request.ticket)
        if isinstance(request, History):
            room = self._rooms.get(request.join_key)
            if room is None:
                return LogFailed(request.ticket, "storage inconsistent")
            earlier = [talk for talk in room.talks if talk.offset < request.before]
            chosen = earlier[-request.limit:]
            older = len(earlier) > len(chosen)
            return HistoryRead(request.ticket, tuple(talk.logged() for talk in chosen), older)
        assert_never(request)
