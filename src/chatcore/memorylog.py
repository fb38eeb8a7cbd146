"""The room log kept in memory: the loopback a core without a store uses.

It answers every request at once, with the same results a durable log gives
after its commit, so that a talk takes one way through the core whether rooms
are kept in memory, in SQLite, or (later) in a log shared by many processes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import assert_never

from .actions import AddUser, Append, Load, LogRequest
from .results import Appended, KeyTaken, Loaded, LogFailed, LogResult, SavedRoom, UserAdded
from .rooms import Talk


@dataclass(slots=True)
class _Room:
    talks: deque[Talk]
    last_user_id: int = field(default=0)
    last_offset: int = field(default=0)


class MemoryLog:
    """Every room of one process and its latest ``history_limit`` talks; it ends with the process."""

    def __init__(self, history_limit: int) -> None:
        self._history_limit = history_limit
        self._rooms: dict[str, _Room] = {}

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    def append(self, join_key: str, user_id: int, time: float, payload: str) -> Talk:
        """Append a talk to a room that exists (`KeyError` otherwise); the talk with its offset.

        What `answer` does for an `Append`, without the request and result
        around it: the core calls this for every talk it keeps in memory.
        """
        room = self._rooms[join_key]
        room.last_offset = offset = room.last_offset + 1
        talk = Talk(join_key, offset, user_id, time, payload)
        room.talks.append(talk)
        return talk

    def answer(self, request: LogRequest) -> LogResult:
        """Do ``request`` and return its result."""
        if isinstance(request, Append):
            if request.join_key not in self._rooms:
                return LogFailed(request.ticket, "storage inconsistent")
            talk = self.append(request.join_key, request.user_id, request.time, request.payload)
            return Appended(request.ticket, talk.logged())
        if isinstance(request, AddUser):
            room = self._rooms.get(request.join_key)
            if request.created is not None:
                if room is not None:
                    return KeyTaken(request.ticket)
                room = self._rooms[request.join_key] = _Room(deque(maxlen=self._history_limit))
            elif room is None:
                return LogFailed(request.ticket, "storage inconsistent")
            room.last_user_id += 1
            return UserAdded(request.ticket, room.last_user_id)
        if isinstance(request, Load):
            room = self._rooms.get(request.join_key)
            if room is None:
                return Loaded(request.ticket, None)
            recent = tuple(talk.logged() for talk in tuple(room.talks)[-request.recent:]) if request.recent else ()
            return Loaded(request.ticket, SavedRoom(request.join_key, room.last_offset, recent))
        assert_never(request)
