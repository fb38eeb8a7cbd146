"""What the core asks its driver to do: small frozen dataclasses, performed elsewhere.

Two kinds, whatever keeps the room log (memory, SQLite, Redis):

- for clients: `Send`, `Broadcast`, `Close`;
- for the driver itself: `Wake` (call `ChatCore.settle` later);
- for the room log (`LogAction`): the requests `AddUser`, `Append`, `Load`,
  `Rename`, `History`, `Moderate` (`LogRequest`: each answered by one result with its
  ``ticket``, in `chatcore.results`), `Fill` (answered by `Filled`) and `Expire`; and
  the notices `Subscribe`, `Forget`, `Presence` and `Typing`, which have no answer. Every
  backend accepts every one of them: a backend with no other process to tell
  (memory, SQLite) has nothing to do for a `Subscribe`, for instance.

The driver hands every log action to its backend and feeds what comes back to
`ChatCore.log_result`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from .control import Change

ConnectionId: TypeAlias = int
"""Opaque id the driver gives each connection; the core never interprets it."""

Ticket: TypeAlias = int
"""Pairs a log result with the request that asked for it."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send one text message (a JSON event) to one connection."""

    connection: ConnectionId
    message: str


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send one text message to every member of a room.

    The message is encoded once; a driver can frame it once and write the
    same bytes to every recipient.
    """

    room: str
    recipients: tuple[ConnectionId, ...]
    message: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close one connection with a WebSocket close code and reason."""

    connection: ConnectionId
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Wake:
    """Call `chatcore.ChatCore.settle` in ``delay`` seconds: a user's grace ends then (`chatcore.graces`).

    Calling it earlier does nothing wrong (it asks again), later delays ``left`` as much; the latest `Wake` need
    not be the soonest: keep the soonest one asked for that `settle` has not answered yet.
    """

    delay: float


@dataclass(frozen=True, slots=True)
class AddUser:
    """Hand out the room's next user id, creating the room first when ``created`` (its time) is given.

    Answered by `UserAdded`; by `KeyTaken` when ``created`` is given and the
    room exists already; by `Refused` when the room's rules keep the user out
    (`chatcore.control.refuse_join`: locked, banned); by `LogFailed` otherwise
    (a missing room included).
    A version-2 client's join also carries: ``resume_hash``, the hash of the
    token it presented (a user of this room registered with that hash is
    handed back instead of a new one, ``resumed``); ``token_hash``, the hash
    of the new token to register for a new user; ``name``, the user's name
    to keep (None: keep the one the log has; a signed-in user's is kept
    unless the join carries its ``subject``).
    """

    ticket: Ticket
    join_key: str
    created: float | None
    token_hash: str | None = None
    resume_hash: str | None = None
    name: str | None = None
    subject: str | None = None
    """A signed-in user's identity (`chatcore.identity.Identity.sub`): the room's user with that subject is handed
    back (``resumed``) whatever token was presented, else a new one is registered with it."""
    name_key: str | None = None
    """``name``'s key (`chatcore.identity.NameKey`): a signed-in user holds it in the room; an unsigned user whose
    name has the key a signed-in member holds is `Refused` (`chatcore.identity.TAKEN`)."""


@dataclass(frozen=True, slots=True)
class Append:
    """Append a talk to the room's log at its next offset; answered by `Appended` or `LogFailed`."""

    ticket: Ticket
    join_key: str
    user_id: int
    time: float
    payload: str
    name: str | None = None
    """The sender's name when sent."""
    talk_id: str | None = None
    """The sender's own id for it: the log keeps one talk per user and id (`Appended` says ``duplicate``)."""
    verified: bool = False
    """The sender is a signed-in user (`UserAdded.verified`): the log keeps it with the talk."""


@dataclass(frozen=True, slots=True)
class Load:
    """Fetch a room and its ``recent`` latest talks; answered by `Loaded` (room None if absent) or `LogFailed`."""

    ticket: Ticket
    join_key: str
    recent: int


@dataclass(frozen=True, slots=True)
class Rename:
    """Keep ``name`` as the user's name in the room (a resume hands it back); answered by `NameSaved`/`LogFailed`,
    or `Refused` when ``name_key`` (`chatcore.identity.NameKey`) is a signed-in member's and the user is not one."""

    ticket: Ticket
    join_key: str
    user_id: int
    name: str
    name_key: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Read the room's ``limit`` latest talks with offsets below ``before``; answered by `HistoryRead`/`LogFailed`."""

    ticket: Ticket
    join_key: str
    before: int
    limit: int


@dataclass(frozen=True, slots=True)
class Moderate:
    """User ``user_id`` changes the room (`chatcore.control`) at ``time``: the log judges it by the room's rules.

    Answered by `Changed` (the change as the log numbered it), `Refused` (the rules do not allow it) or
    `LogFailed`.
    """

    ticket: Ticket
    join_key: str
    user_id: int
    time: float
    change: Change


@dataclass(frozen=True, slots=True)
class Fill:
    """Read the room's talks with offsets above ``after``, oldest first; answered by `Filled` (a backend may retry).

    Asked when talks heard from other processes show a gap (`chatcore.feed`). A shared log adds the room's
    changes numbered above ``changes_after`` that it keeps.
    """

    join_key: str
    after: int
    changes_after: int = 0


@dataclass(frozen=True, slots=True)
class Expire:
    """Retention: erase every talk sent before ``before`` (a time), and end every room with no talk since then.

    No answer: the log tells what it erased in rooms this process holds as news (`Expired`, and an
    `chatcore.control.End` by 0 in a `ChangeArrived`), on every backend.
    """

    before: float


@dataclass(frozen=True, slots=True)
class Subscribe:
    """The core is about to read a room it will hold (a `Load`, or an `AddUser` that creates it): a log shared
    with other processes must tell it, from before that read, of their talks (`TalkArrived`) and presence news."""

    join_key: str


@dataclass(frozen=True, slots=True)
class Presence:
    """A user's first connection to the room on this process opened (``here``), or its last one closed.

    A shared log tells the other processes; the memory log forgets a user some time after it left. No result.
    """

    join_key: str
    user_id: int
    here: bool
    name: str | None


@dataclass(frozen=True, slots=True)
class Typing:
    """A user is typing in the room (its members here were told): a shared log tells the other processes, at once
    and at most once (never stored; lost if it cannot be told now: the next one follows within seconds). No result.
    """

    join_key: str
    user_id: int


@dataclass(frozen=True, slots=True)
class Forget:
    """The core no longer holds the room (nobody in it, nothing in flight): a shared log may stop listening to it.

    No result.
    """

    join_key: str


LogRequest: TypeAlias = AddUser | Append | Load | Rename | History | Moderate
"""The log actions answered by a result with their ``ticket``."""
LogNotice: TypeAlias = Subscribe | Forget | Presence | Typing
"""The log actions with no answer."""
LogAction: TypeAlias = LogRequest | Fill | Expire | LogNotice
Action: TypeAlias = Send | Broadcast | Close | Wake | LogAction
