"""What the room log answers: fed back to the core with `ChatCore.log_result`.

A request (`AddUser`, `Append`, `Load` in `chatcore.actions`) is answered by
exactly one result with the same ``ticket``, in the order the requests were
made. An `Appended` with ``ticket=None`` is a talk the log accepted from
someone else (another process sharing the log): the core delivers it the same
way as its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

from .actions import Ticket


class LoggedTalk(NamedTuple):
    """One talk as the room's log holds it: ``offset`` is its position in the room, 1, 2, 3 … with no gaps.

    A named tuple rather than a dataclass: there is one per talk, kept in
    histories by the thousand, and a tuple of strings and numbers is cheap
    to make and is left alone by the garbage collector.
    """

    join_key: str
    offset: int
    user_id: int
    time: float
    payload: str


@dataclass(frozen=True, slots=True)
class SavedRoom:
    """A room as the log holds it: the offset of its newest talk (0: none yet) and its latest talks, oldest first."""

    join_key: str
    last_offset: int
    talks: tuple[LoggedTalk, ...]


@dataclass(frozen=True, slots=True)
class UserAdded:
    """`AddUser` done: ``user_id`` is new in the room and will never be handed out again."""

    ticket: Ticket
    user_id: int


@dataclass(frozen=True, slots=True)
class KeyTaken:
    """`AddUser` with ``created`` found a room with that key already (nothing done): the core draws another key."""

    ticket: Ticket


@dataclass(frozen=True, slots=True)
class Appended:
    """A talk is in the room's log at ``talk.offset``; ``ticket`` is None when the talk came from elsewhere."""

    ticket: Ticket | None
    talk: LoggedTalk


@dataclass(frozen=True, slots=True)
class Loaded:
    """`Load` done: the room, or None when the log has no room with that key."""

    ticket: Ticket
    room: SavedRoom | None


@dataclass(frozen=True, slots=True)
class LogFailed:
    """The log could not do it, and did none of it; ``reason`` is short and safe to show to clients."""

    ticket: Ticket
    reason: str


LogResult: TypeAlias = UserAdded | KeyTaken | Appended | Loaded | LogFailed
