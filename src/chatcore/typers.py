"""Who is typing: told to a room's other members whose dialect tells typing, never stored, never numbered.

A user's ``typing`` is told at most once every `TYPING_INTERVAL` seconds, per user in the room (all its
connections share it, and so does what other processes tell of it: `heard`); the rest are dropped silently,
as a page sends one per keystroke. The clock is the core's (``now`` is given): a clock that steps back lets
the next one through.

The rate: a member's small ``typing`` (`TYPING_MAX_CHARS`) that is told is taken before the connection's
rate is counted (`passed_on`), so a page that keeps to the interval is never charged for it; one dropped by
the interval, and a bigger one, are counted as any request (refused for rate, the connection closed with 1008
after the strikes): a flood of them is closed as any flood is.
"""

from __future__ import annotations

from collections.abc import Callable

from . import problems
from .actions import Action, Broadcast, Typing
from .errors import ProtocolError
from .limits import CoreLimits
from .rooms import Room
from .session import Session
from .wire.jsontext import decode_or_none

Clock = Callable[[], float]

TYPING_INTERVAL = 2.0
"""Seconds after one ``typing`` of a user during which the next ones are dropped (the protocol says 2 s)."""
TYPING_MAX_CHARS = 64
"""The longest text taken as a ``typing`` before the rate is counted (`passed_on`); a longer one is counted."""


def passed_on(session: Session, text: str | None, event: object, clock: Clock, limits: CoreLimits) -> list[Action]:
    """If the message (``text``, else the decoded ``event``) is a member's small ``typing`` that is told now: what
    to do (`member_typing`), outside the rate. Else nothing: the message is taken as any request, counted."""
    room = session.room
    if room is None or not is_typing(text, event, limits):
        return []
    return member_typing(room, session.user_id, clock())  # (empty: dropped by the interval)


def is_typing(text: str | None, event: object, limits: CoreLimits) -> bool:
    """Whether a message is a small ``typing``: a text of at most `TYPING_MAX_CHARS` characters (so that the check
    is cheap, and what goes outside the rate is small), or a decoded event with no field but its type."""
    if text is not None:
        if len(text) > TYPING_MAX_CHARS or "typing" not in text:  # (a talk is decoded once, later)
            return False
        event = decode_or_none(text, limits.max_json_depth)
    elif not isinstance(event, dict) or len(event) != 1:
        return False
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
    user's own connections here, if any, wait the interval from now before they are told again.

    Only of a user in the room (its presence news comes first, on the same channel): news of one that is not
    (news lost, or it left since) is dropped, so that ``Room.typed`` holds members only (a user's entry goes
    with its name when it is gone: `chatcore.rooms.Room.forget_if_absent`)."""
    if not room.present(user_id):
        return []
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
