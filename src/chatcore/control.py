"""Who may change a room, and how: its control state, the changes a client may ask for, and the rules.

The owner is the user who started the room: always its first user id
(`OWNER`), so ownership follows that user's resume token. The owner makes
other users moderators and back; owner and moderators are the room's staff.

Every change is an entry in the room's log, ordered with its talks: the log
judges a change (`judge`) against the state it holds, in the order changes
reach it, and numbers the ones it accepts (``seq``: 1, 2, 3 … per room, gap-free).
Every process applies them in that order (`RoomControl.after`), so every
replay, history page and late joiner agrees. Pure: the memory log, SQLite and
Redis all judge with this one function.
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


@dataclass(frozen=True, slots=True)
class TalkFacts:
    """What the log knows of the talk an edit or delete names: its sender, and whether it is deleted already."""

    user_id: int
    deleted: bool


def judge(
    control: RoomControl, actor: int, change: Change, *, talk: TalkFacts | None = None, last_user_id: int = 0
) -> str | None:
    """Why ``actor`` may not make ``change`` in the room (a short text for the client), or None if it may.

    ``talk``: the talk an `Edit` or `Delete` names, as the log has it (None: it has no talk at that offset).
    ``last_user_id``: the last user id the room handed out (a `Remove` or `SetRole` names one of them).
    """
    if isinstance(change, Edit | Delete):
        if talk is None:
            return "no such message in this chat"
        if talk.deleted:
            return "that message was deleted"
        if isinstance(change, Edit):
            return None if talk.user_id == actor else "you can only edit your own messages"
        if talk.user_id == actor or control.is_staff(actor):
            return None
        return "you can only delete your own messages"
    if isinstance(change, Title | Lock):
        return None if control.is_staff(actor) else f"only the chat's owner and moderators can {_doing(change)}"
    if isinstance(change, End):
        return None if actor == OWNER else "only the chat's owner can end it"
    if not 1 <= change.user_id <= last_user_id:
        return "no such user in this chat"
    if isinstance(change, SetRole):
        if actor != OWNER:
            return "only the chat's owner can change roles"
        if change.user_id == OWNER:
            return "the owner's role cannot change"
        if change.user_id in control.banned:
            return "that user is banned from this chat"
        return None
    if not control.is_staff(actor):
        return "only the chat's owner and moderators can remove users"
    if change.user_id == actor:
        return "you cannot remove yourself"
    if change.user_id == OWNER:
        return "the owner cannot be removed"
    if actor != OWNER and change.user_id in control.moderators:
        return "only the owner can remove a moderator"
    return None


def refuse_join(control: RoomControl, user_id: int | None) -> str | None:
    """Why a join may not go on (None: it may): ``user_id`` is the user a valid token named, None for a new user."""
    if user_id is None:
        return LOCKED if control.locked else None
    return BANNED if user_id in control.banned else None


LOCKED = "this chat is locked: only people who were in it can come back"
BANNED = "you were removed from this chat"


def _doing(change: Title | Lock) -> str:
    return "set its title" if isinstance(change, Title) else "lock or unlock it"
