"""What the application hears from a room: small frozen dataclasses, one per kind of news."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Member:
    """Someone in the room, as the room listed them when we joined."""

    user_id: int
    name: str | None
    role: str = "member"
    verified: bool = False


@dataclass(frozen=True, slots=True)
class Joined:
    """We are in the room: first on connecting, and again after each reconnect (``resumed``: as the same user)."""

    join_key: str
    user_id: int
    name: str | None
    role: str
    members: tuple[Member, ...]
    resumed: bool
    offset: int
    """The room's newest offset when we joined (0: no talk yet)."""
    older: bool
    """Older talks than the replay exist: `Chat.history` asks for them. Always false on a resume: the talks a long
    absence left out of the replay are fetched and delivered first (see `Client.filling`)."""
    title: str | None
    locked: bool


@dataclass(frozen=True, slots=True)
class Talk:
    """A message in the room, ours too, delivered once and in offset order."""

    offset: int
    user_id: int
    name: str | None
    payload: str | None
    """None if it was deleted."""
    time: float
    id: str | None = None
    edited: float | None = None
    deleted: bool = False
    verified: bool = False


@dataclass(frozen=True, slots=True)
class MemberJoined:
    user_id: int
    name: str | None
    verified: bool = False


@dataclass(frozen=True, slots=True)
class MemberLeft:
    user_id: int


@dataclass(frozen=True, slots=True)
class Renamed:
    user_id: int
    name: str | None
    verified: bool = False


@dataclass(frozen=True, slots=True)
class Edited:
    offset: int
    payload: str
    edited: float


@dataclass(frozen=True, slots=True)
class Deleted:
    offset: int
    by: int | None
    """Who deleted it (None: not known, a resume's replay told of it)."""


@dataclass(frozen=True, slots=True)
class RoomChanged:
    title: str | None
    locked: bool
    by: int


@dataclass(frozen=True, slots=True)
class Removed:
    """Somebody was removed from the room (not us: that ends our session, `Ended`)."""

    user_id: int
    ban: bool
    by: int


@dataclass(frozen=True, slots=True)
class RoleChanged:
    user_id: int
    role: str
    by: int


@dataclass(frozen=True, slots=True)
class History:
    """Older talks, oldest first, as a ``history`` request asked for (not part of the live stream's order)."""

    before: int | None
    talks: tuple[Talk, ...]
    older: bool


@dataclass(frozen=True, slots=True)
class Refused:
    """The server refused something we sent; ``id`` names the talk, ``request`` the change, when it was one."""

    message: str
    id: str | None = None
    request: str | None = None
    code: str | None = None
    """What kind of refusal, for programs (``not-allowed``, ``too-long``, …: the protocol page lists them)."""


@dataclass(frozen=True, slots=True)
class Ended:
    """The session is over for good: we were removed, the room was ended, or it cannot be joined."""

    reason: str
    code: int | None = None
    """The close code, when the server closed the connection (4403: removed; 4410: the room was ended)."""
    refusal: str | None = None
    """The refusal's code, when the server refused to let us in (``not-found``, ``banned``, ``locked``, …)."""


Event = (
    Joined | Talk | MemberJoined | MemberLeft | Renamed | Edited | Deleted | RoomChanged | Removed | RoleChanged
    | History | Refused | Ended
)
