"""Who is typing: told to a room's other members whose dialect tells typing, never stored, never numbered.

A user's ``typing`` is told at most once every `TYPING_INTERVAL` seconds, per user in the room (all its
connections share it, and so does what other processes tell of it: `heard`); the rest are dropped silently,
as a page sends one per keystroke. The clock is the core's (``now`` is given): a clock that steps back lets
the next one through.
"""

from __future__ import annotations

from . import problems
from .actions import Action, Broadcast, Typing
from .errors import ProtocolError
from .limits import CoreLimits
from .rooms import Room
from .wire.jsontext import decode_or_none

TYPING_INTERVAL = 2.0
"""Seconds after one ``typing`` of a user during which the next ones are dropped."""


def is_typing(text: str | None, event: object, limits: CoreLimits) -> bool:
    """Whether a message (``text``, else the decoded ``event``) is a ``typing``: a member's is taken before the
    rate is counted (`member_typing`), the rest of its messages as usual."""
    if text is not None:
        if "typing" not in text:  # (most messages are talks: decoded once, later)
            return False
        event = decode_or_none(text, limits.max_json_depth)
    return isinstance(event, dict) and event.get("type") == "typing"


def member_typing(room: Room | None, user_id: int, now: float) -> list[Action]:
    """User ``user_id`` of ``room`` (None: a connection in no room, refused) is typing here.

    Unless it was told less than the interval ago (then nothing: dropped), the room's other members whose
    dialect tells typing are told, and the log too (`chatcore.actions.Typing`, for the other processes).
    """
    if room is None:
        raise ProtocolError(problems.NOT_IN_CHAT, request="typing")
    last = room.typed.get(user_id)
    if last is not None and last <= now < last + TYPING_INTERVAL:
        return []
    room.typed[user_id] = now
    return [*_tell(room, user_id), Typing(room.join_key, user_id)]


def heard(room: Room, user_id: int, now: float) -> list[Action]:
    """Another process told that a user is typing (it kept to the interval): the members here are told, and the
    user's own connections here, if any, wait the interval from now before they are told again."""
    room.typed[user_id] = now
    return _tell(room, user_id)


def _tell(room: Room, user_id: int) -> list[Action]:
    actions: list[Action] = []
    for dialect, _ in room.audiences():
        if dialect.tells_typing:
            others = room.members_but(dialect, user_id)
            if others:
                actions.append(Broadcast(room.join_key, others, dialect.typing_event(user_id)))
    return actions
