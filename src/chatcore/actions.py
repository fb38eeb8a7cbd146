"""What the core asks its driver to do: small frozen dataclasses, performed elsewhere.

Two kinds: what to send to clients (`Send`, `Broadcast`, `Close`), and what to
ask of the room log (`AddUser`, `Append`, `Load`: each is answered by one
result in `chatcore.results`, fed back to `ChatCore.log_result`; and, for a
log shared by several processes, `Forget`, which has no answer). A core with
its own in-memory log answers those itself and never returns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

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
class AddUser:
    """Hand out the room's next user id, creating the room first when ``created`` (its time) is given.

    Answered by `UserAdded`; by `KeyTaken` when ``created`` is given and the
    room exists already; by `LogFailed` otherwise (a missing room included).
    """

    ticket: Ticket
    join_key: str
    created: float | None


@dataclass(frozen=True, slots=True)
class Append:
    """Append a talk to the room's log at its next offset; answered by `Appended` or `LogFailed`."""

    ticket: Ticket
    join_key: str
    user_id: int
    time: float
    payload: str


@dataclass(frozen=True, slots=True)
class Load:
    """Fetch a room and its ``recent`` latest talks; answered by `Loaded` (room None if absent) or `LogFailed`."""

    ticket: Ticket
    join_key: str
    recent: int


@dataclass(frozen=True, slots=True)
class Forget:
    """The core no longer holds the room (nobody in it, nothing in flight): a shared log may stop listening to it.

    Only a core made with ``shared_log`` says so; it has no result.
    """

    join_key: str


LogRequest: TypeAlias = AddUser | Append | Load
Action: TypeAlias = Send | Broadcast | Close | LogRequest | Forget
