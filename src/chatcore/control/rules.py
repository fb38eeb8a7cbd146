"""The rules of room control: who may make which change, and who may join (pure).

Every change is an entry in the room's log, ordered with its talks: the log
judges a change (`judge`) against the state it holds, in the order changes
reach it, and numbers the ones it accepts (``seq``: 1, 2, 3 … per room, gap-free).
Every process applies them in that order (`chatcore.changes`), so every
replay, history page and late joiner agrees. The memory log, SQLite and
Redis all judge with this one function.
"""

from __future__ import annotations

from dataclasses import dataclass

from .state import OWNER, Change, Delete, Edit, End, Lock, RoomControl, SetRole, Title


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
