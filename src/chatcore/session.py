"""Per-connection state: where one connection stands in the protocol, and the answers it is owed.

States and the transitions between them (anything not listed is a bug, and raises `TransitionError`)::

    LOBBY ───init──────────▶ JOINING ───UserAdded──────▶ MEMBER
      ▲                         │ (KeyTaken: another key, another AddUser)
      └──LogFailed / no room / no free key──┘
    LOBBY, JOINING, MEMBER ───the core asks for a close──▶ CLOSING
    CLOSING ───UserAdded / LogFailed──▶ CLOSING
    every state ───disconnect──▶ (forgotten)

- LOBBY: open, in no room. An ``init`` goes to the log; a ``talk`` is an error.
- JOINING: the ``init`` is with the log (a `Load` of the room, then `AddUser`).
  Whatever the client sends meanwhile waits in the backlog, to be answered
  after the ``init``, in order.
- MEMBER: in a room, for good (one room per connection). Talks (and, in
  version 2, renames and history reads) go to the log as they come, many at
  a time: the log answers in order. Anything else (an error to send back, a
  second ``init``) waits until none of this connection's requests is with
  the log, so that answers keep the order of requests.
- CLOSING: the core asked the driver to close it (rate, backlog): nothing it
  sends from then on is answered. What it sent before that decision is still
  answered, in order, before the `Close` (a join with the log still
  completes, queued talks still go to the log); no new join starts.
"""

from __future__ import annotations

from collections import deque
from enum import Enum, auto
from typing import TYPE_CHECKING

from .errors import TransitionError
from .ratelimit import TokenBucket
from .wire.dialect import ChangeRequest, Dialect, HistoryRequest, NameRequest, Request, TalkRequest
from .wire.dialects import LOBBY

if TYPE_CHECKING:
    from .actions import Action
    from .rooms import Room

_LOGGED = (TalkRequest, NameRequest, HistoryRequest, ChangeRequest)
"""Requests that go to the log: the log answers them in order, so they need not wait for each other (but for a
rename: a talk carries its sender's name, known once the rename is answered)."""


class SessionState(Enum):
    """Where a connection stands; see the module docstring for the transitions."""

    LOBBY = auto()
    JOINING = auto()
    MEMBER = auto()
    CLOSING = auto()


class _Step(Enum):
    JOIN_ASKED = auto()
    JOINED = auto()
    JOIN_FAILED = auto()
    CLOSE_ASKED = auto()


_TRANSITIONS: dict[tuple[SessionState, _Step], SessionState] = {
    (SessionState.LOBBY, _Step.JOIN_ASKED): SessionState.JOINING,
    (SessionState.JOINING, _Step.JOINED): SessionState.MEMBER,
    (SessionState.JOINING, _Step.JOIN_FAILED): SessionState.LOBBY,
    (SessionState.LOBBY, _Step.CLOSE_ASKED): SessionState.CLOSING,
    (SessionState.JOINING, _Step.CLOSE_ASKED): SessionState.CLOSING,
    (SessionState.MEMBER, _Step.CLOSE_ASKED): SessionState.CLOSING,
    (SessionState.CLOSING, _Step.JOINED): SessionState.CLOSING,
    (SessionState.CLOSING, _Step.JOIN_FAILED): SessionState.CLOSING,
}


class Session:
    """One open connection: its state, its room once a member, its rate and its queued answers."""

    __slots__ = (
        "backlog", "bucket", "dialect", "in_flight", "removed", "renaming", "room", "state", "user_id", "verified"
    )

    def __init__(self, bucket: TokenBucket) -> None:
        self.state = SessionState.LOBBY
        self.dialect: Dialect = LOBBY
        """How it reads and writes: the seed's until an ``init`` chooses (the latest ``init``'s choice)."""
        self.bucket = bucket
        self.room: Room | None = None
        """Its room once it joined (MEMBER, or CLOSING after it joined); it never changes after."""
        self.user_id = 0
        self.in_flight = 0
        """Requests of this connection with the log."""
        self.renaming = 0
        """Renames among them: what it sends after one waits for it (a talk carries the name it was sent under)."""
        self.removed = False
        """A moderator removed its user: once closed, the user is announced gone at once, with no grace."""
        self.verified = False
        """Its user is signed in, as the log says (`UserAdded.verified`), whether this connection presented a token or
        only its resume token: its talks say so, and its name is set by signed-in joins only."""
        self.backlog: deque[Request | list[Action]] | None = None
        """Requests (and answers) that came while earlier ones were with the log, oldest first."""

    def join_asked(self) -> None:
        self._step(_Step.JOIN_ASKED)

    def joined(self, room: Room, user_id: int) -> None:
        self._step(_Step.JOINED)
        self.room = room
        self.user_id = user_id

    def join_failed(self) -> None:
        self._step(_Step.JOIN_FAILED)

    def close_asked(self) -> None:
        self._step(_Step.CLOSE_ASKED)

    def may_go_now(self, outcome: Request | list[Action]) -> bool:
        """Whether a request (or a ready answer) can be handled before this connection's log requests return."""
        if self.in_flight == 0:
            return True
        return self.room is not None and isinstance(outcome, _LOGGED) and not self.renaming

    def _step(self, step: _Step) -> None:
        state = _TRANSITIONS.get((self.state, step))
        if state is None:
            raise TransitionError(f"{step.name.lower().replace('_', ' ')} is not a transition from {self.state.name}")
        self.state = state
