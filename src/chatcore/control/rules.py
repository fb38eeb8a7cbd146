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

from .. import problems
from ..problems import BANNED, LOCKED, Problem
from .state import OWNER, Change, Delete, Edit, End, Lock, RoomControl, SetRole, Title


@dataclass(frozen=True, slots=True)
class TalkFacts:
    """What the log knows of the talk an edit or delete names: its sender, and whether it is deleted already."""

    user_id: int
    deleted: bool


def judge(
    control: RoomControl, actor: int, change: Change, *, talk: TalkFacts | None = None, last_user_id: int = 0
) -> Problem | None:
    """Why ``actor`` may not make ``change`` in the room, or None if it may.

    ``talk``: the talk an `Edit` or `Delete` names, as the log has it (None: it has no talk at that offset).
    ``last_user_id``: the last user id the room handed out (a `Remove` or `SetRole` names one of them).
    """
    if isinstance(change, Edit | Delete):
        if talk is None:
            return problems.NO_SUCH_MESSAGE
        if talk.deleted:
            return problems.MESSAGE_DELETED
        if isinstance(change, Edit):
            return None if talk.user_id == actor else problems.EDIT_OWN_ONLY
        if talk.user_id == actor or control.is_staff(actor):
            return None
        return problems.DELETE_OWN_ONLY
    if isinstance(change, Title | Lock):
        return None if control.is_staff(actor) else problems.STAFF_ONLY.format(doing=_doing(change))
    if isinstance(change, End):
        return None if actor == OWNER else problems.OWNER_ONLY.format(doing="end it")
    if not 1 <= change.user_id <= last_user_id:
        return problems.NO_SUCH_USER
    if isinstance(change, SetRole):
        if actor != OWNER:
            return problems.OWNER_ONLY.format(doing="change roles")
        if change.user_id == OWNER:
            return problems.OWNER_ROLE
        if change.user_id in control.banned:
            return problems.BANNED_ROLE
        return None
    if not control.is_staff(actor):
        return problems.STAFF_ONLY.format(doing="remove people")
    if change.user_id == actor:
        return problems.REMOVE_SELF
    if change.user_id == OWNER:
        return problems.REMOVE_OWNER
    if actor != OWNER and change.user_id in control.moderators:
        return problems.OWNER_ONLY.format(doing="remove a moderator")
    return None


def refuse_join(control: RoomControl, user_id: int | None) -> Problem | None:
    """Why a join may not go on (None: it may): ``user_id`` is the user a valid token named, None for a new user."""
    if user_id is None:
        return LOCKED if control.locked else None
    return BANNED if user_id in control.banned else None


def _doing(change: Title | Lock) -> str:
    return "set its title" if isinstance(change, Title) else "lock or unlock it"
