"""The core's requests with the room log, by ticket: what each one was for, and which results may answer it."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field

from .actions import ConnectionId, Ticket
from .control import Change
from .errors import DriverError
from .identity import Identity
from .results import (
    Appended,
    Changed,
    HistoryRead,
    KeyTaken,
    Loaded,
    LogAnswer,
    LogFailed,
    LoggedChange,
    LoggedTalk,
    NameSaved,
    PresenceHeard,
    Refused,
    UserAdded,
)
from .rooms import Room
from .session import Session
from .wire.dialect import Dialect, InitRequest


def token_hash(token: str) -> str:
    """What the log keeps of a token: a token is a credential, and a copy of the log must not hand them out."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Intro:
    """What an ``init`` asked for, carried through the log's answers."""

    dialect: Dialect
    name: str | None = None
    token: str | None = None
    """The new token for a new user (dialects that resume)."""
    resume: str | None = None
    """The token presented, to come back as its user."""
    after: int | None = None
    subject: str | None = None
    """The user's sign-in identity (``sub``), when a token vouched for it: the log keeps one user per subject."""

    @classmethod
    def of(cls, request: InitRequest, identity: Identity | None, token: str | None) -> Intro:
        """What ``request`` asks for, by the user its sign-in ``identity`` names (its name is the token's)."""
        if identity is None:
            return cls(request.dialect, request.name, token, request.token, request.after)
        name = request.name if identity.name is None else identity.name
        return cls(request.dialect, name, token, request.token, request.after, identity.sub)


@dataclass(slots=True)
class Joining:
    """`AddUser`: a connection becomes a user of the room."""

    connection: ConnectionId
    session: Session
    room: Room
    intro: Intro
    created: float | None
    attempt: int
    """Rooms this join has tried to create (a new key each time the log says `KeyTaken`)."""


@dataclass(slots=True)
class Talking:
    """`Append`: a connection's talk."""

    connection: ConnectionId
    session: Session
    room: Room
    talk_id: str | None = None


@dataclass(slots=True)
class Naming:
    """`Rename`: a connection's user takes a name."""

    connection: ConnectionId
    session: Session
    room: Room
    name: str


@dataclass(slots=True)
class Changing:
    """`Moderate`: a connection's user changes the room."""

    connection: ConnectionId
    session: Session
    room: Room
    change: Change


@dataclass(slots=True)
class Reading:
    """`History`: a connection reads older talks."""

    connection: ConnectionId
    session: Session
    before: int


@dataclass(frozen=True, slots=True)
class Loading:
    """`Load`: a room is read, for the joins waiting in its `RoomLoad`."""

    join_key: str


@dataclass(frozen=True, slots=True)
class Waiter:
    """A join waiting for its room to be loaded."""

    connection: ConnectionId
    session: Session
    intro: Intro


@dataclass(slots=True)
class RoomLoad:
    """A room being loaded: who waits to join it, and talks and presence news from elsewhere that arrived meanwhile."""

    waiters: list[Waiter]
    arrived: list[LoggedTalk] | None = None
    presence: list[PresenceHeard] = field(default_factory=list)
    changes: list[LoggedChange] = field(default_factory=list)
    expired: int = 0
    """The first talk kept by retention, if the log said it erased talks meanwhile (0: it did not)."""


Pending = Joining | Talking | Loading | Naming | Reading | Changing

_ANSWERS: dict[type[Pending], tuple[type[LogAnswer], ...]] = {  # (exact types: results are final classes)
    Joining: (UserAdded, KeyTaken, Refused, LogFailed),
    Talking: (Appended, LogFailed),
    Loading: (Loaded, LogFailed),
    Naming: (NameSaved, Refused, LogFailed),
    Reading: (HistoryRead, LogFailed),
    Changing: (Changed, Refused, LogFailed),
}


class Tickets:
    """Requests with the log, by ticket: `issue` one for each request made, `settle` it with its answer."""

    def __init__(self) -> None:
        self._pending: dict[Ticket, Pending] = {}
        self._next = itertools.count(1)

    def __len__(self) -> int:
        return len(self._pending)

    def issue(self, pending: Pending) -> Ticket:
        """A ticket for a request about to go to the log; its answer is matched to ``pending`` by it."""
        ticket = next(self._next)
        self._pending[ticket] = pending
        return ticket

    def settle(self, answer: LogAnswer) -> Pending:
        """The request ``answer`` answers, no longer pending; `DriverError` (nothing changed) if it answers none."""
        pending = self._pending.pop(answer.ticket, None)
        if type(pending) is Talking and type(answer) is Appended and answer.talk.join_key == pending.room.join_key:
            return pending  # (the common case, checked first)
        if pending is None:
            raise DriverError(f"no log request has ticket {answer.ticket}")
        mismatch = _mismatch(pending, answer)
        if mismatch:
            self._pending[answer.ticket] = pending
            raise DriverError(f"ticket {answer.ticket}: {mismatch}")
        return pending


def _mismatch(pending: Pending, answer: LogAnswer) -> str | None:
    """Why ``answer`` cannot answer the request it names, or None if it can."""
    if type(answer) not in _ANSWERS[type(pending)]:
        return f"{type(answer).__name__} does not answer {type(pending).__name__.lower()}"
    if isinstance(pending, Talking) and isinstance(answer, Appended) and answer.talk.join_key != pending.room.join_key:
        return "appended to another room"
    if isinstance(pending, Joining) and isinstance(answer, KeyTaken) and pending.created is None:
        return "no room was to be created, so no key can be taken"
    return None
