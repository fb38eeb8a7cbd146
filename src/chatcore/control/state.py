"""A room's control state, and the changes a client may ask for (small frozen dataclasses).

The owner is the user who started the room: always its first user id
(`OWNER`), so ownership follows that user's resume token. The owner makes
other users moderators and back; owner and moderators are the room's staff.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal, TypeAlias

OWNER = 1
"""The owner's user id: the first user of a room is the one whose ``init`` started it."""
MAX_TITLE_CHARS = 64

Role: TypeAlias = Literal["owner", "moderator", "member"]


@dataclass(frozen=True, slots=True)
class Edit:
    """Change the text of one's own talk at ``offset``."""

    kind: ClassVar[str] = "edit"
    offset: int
    payload: str


@dataclass(frozen=True, slots=True)
class Delete:
    """Erase the talk at ``offset`` (its text and name; the offset stays)."""

    kind: ClassVar[str] = "delete"
    offset: int


@dataclass(frozen=True, slots=True)
class Title:
    """Set the room's title (None clears it)."""

    kind: ClassVar[str] = "room"
    title: str | None


@dataclass(frozen=True, slots=True)
class Lock:
    """Lock the room (no new user joins) or open it again."""

    kind: ClassVar[str] = "lock"
    locked: bool


@dataclass(frozen=True, slots=True)
class Remove:
    """Close a user's connections to the room; with ``ban``, its token never joins the room again."""

    kind: ClassVar[str] = "remove"
    user_id: int
    ban: bool = False


@dataclass(frozen=True, slots=True)
class SetRole:
    """Make a user a moderator, or a member again."""

    kind: ClassVar[str] = "role"
    user_id: int
    moderator: bool


@dataclass(frozen=True, slots=True)
class End:
    """End the room: every connection closes, and the log erases the room with its talks and users."""

    kind: ClassVar[str] = "end"


Change: TypeAlias = Edit | Delete | Title | Lock | Remove | SetRole | End


@dataclass(frozen=True, slots=True)
class RoomControl:
    """A room's control state as of its change number ``seq`` (0: never changed)."""

    title: str | None = None
    locked: bool = False
    moderators: frozenset[int] = field(default_factory=frozenset)
    banned: frozenset[int] = field(default_factory=frozenset)
    seq: int = 0

    def role(self, user_id: int) -> Role:
        if user_id == OWNER:
            return "owner"
        return "moderator" if user_id in self.moderators else "member"

    def is_staff(self, user_id: int) -> bool:
        return user_id == OWNER or user_id in self.moderators

    def after(self, change: Change, seq: int) -> RoomControl:
        """The state once ``change`` (accepted as number ``seq``) is applied."""
        if isinstance(change, Title):
            return replace(self, title=change.title, seq=seq)
        if isinstance(change, Lock):
            return replace(self, locked=change.locked, seq=seq)
        if isinstance(change, SetRole):
            moderators = self.moderators | {change.user_id} if change.moderator else self.moderators - {change.user_id}
            return replace(self, moderators=moderators, seq=seq)
        if isinstance(change, Remove):
            banned = self.banned | {change.user_id} if change.ban else self.banned
            return replace(self, moderators=self.moderators - {change.user_id}, banned=banned, seq=seq)
        return replace(self, seq=seq)


NEVER_CHANGED = RoomControl()
"""A room's control state before its first change: no title, open, no moderators, nobody banned."""
